"""Frame sources: one module per kind, picked by ``open_source(spec, config)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import CameraConfig
from ..errors import CameraError
from .base import FrameSource
from .folder import is_image_file
from .opencv import is_stream, parse_device  # cv2 itself is imported only when a source opens

__all__ = ["FrameSource", "open_source", "source_kind"]


def source_kind(spec: str) -> str:
    """Which module handles ``spec``: picamera2, opencv or folder (an image folder or one image file)."""
    text = spec.strip()
    if text.lower() == "picamera2" or text.lower().startswith("picamera2:"):
        return "picamera2"
    if parse_device(text) is not None or is_stream(text):
        return "opencv"
    path = Path(text).expanduser()
    # One photo is a folder of one still, not a one-frame video the tracker never gets two votes from.
    return "folder" if path.is_dir() or is_image_file(path) else "opencv"


def open_source(spec: str, config: Any) -> FrameSource:
    """Open the source named by ``spec`` with the ``[camera]`` settings.

    ``config`` is a CameraConfig (an EdgeConfig works too). Hardware libraries are imported
    here, only for the kind asked for.
    """
    camera: CameraConfig = getattr(config, "camera", config)
    if not spec or not spec.strip():
        # Path("") is the current directory: an empty source would read it, recursively.
        raise CameraError("[camera] source is empty; give picamera2, /dev/video0, a video file, "
                          "an rtsp:// URL, an image or an image folder")
    kind = source_kind(spec)
    if kind == "picamera2":
        from .picamera2 import Picamera2Source

        index = spec.partition(":")[2]
        return Picamera2Source(width=camera.width, height=camera.height, fps=camera.fps,
                               camera=int(index) if index.isdigit() else 0)
    if kind == "folder":
        from .folder import FolderSource

        return FolderSource(Path(spec).expanduser(), loop=camera.loop)
    from .opencv import OpenCVSource

    target = spec if parse_url(spec) else str(Path(spec).expanduser())
    return OpenCVSource(target, width=camera.width, height=camera.height, fps=camera.fps,
                        loop=camera.loop)


def parse_url(spec: str) -> bool:
    """Whether ``spec`` is a network stream URL or device (left untouched by path expansion)."""
    return is_stream(spec) or parse_device(spec) is not None
