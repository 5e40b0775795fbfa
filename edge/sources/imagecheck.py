"""Refuse huge images before decoding them: a 1.2 MB PNG of 20000x20000 px decodes to 1.2 GB.

The size is read from the file's header (PNG, JPEG, BMP, WebP), so a bomb costs a few bytes of
reading, not the Pi's memory::

    image = read_image_checked("photo.jpg")   # ImageError when over MAX_IMAGE_PIXELS
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..preprocess import read_image

# 50 MP: a 48 MP phone photo still loads (150 MB as BGR); a Pi Zero 2 has 512 MB in all.
MAX_IMAGE_PIXELS = 50_000_000
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(handle) -> tuple[int, int] | None:
    handle.seek(2)
    while True:
        byte = handle.read(1)
        while byte == b"\xff":
            byte = handle.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if marker in _JPEG_SOF:
            data = handle.read(5)
            if len(data) < 5:
                return None
            height, width = struct.unpack(">HH", data[1:5])
            return width, height
        handle.seek(length - 2, 1)


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def image_dimensions(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the header; None for formats or headers it does not know."""
    with open(path, "rb") as handle:
        head = handle.read(32)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
            return struct.unpack(">II", head[16:24])
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(handle)
        if head.startswith(b"BM") and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp_size(head)
    return None


def check_image_size(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """ImageError when the header says the image is larger than ``max_pixels``, or is unreadable."""
    try:
        size = image_dimensions(path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{path}: {size[0]}x{size[1]} px is too large to decode safely "
                         f"({size[0] * size[1] / 1e6:.0f} MP, limit {max_pixels / 1e6:.0f} MP); resize it")


def read_image_checked(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """``read_image`` after the header size check: a BGR uint8 array, or ImageError."""
    check_image_size(path, max_pixels)
    return read_image(str(path))
