"""THE crop-and-preprocess contract: what a model sees, identical in training, conversion and at the edge."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import ImageError

# (x, y, w, h) in pixels of the frame the box was found in.
Box = tuple[int, int, int, int]

_INTERPOLATIONS = ("auto", "area", "linear", "nearest", "cubic")


@dataclass(frozen=True)
class CropSpec:
    """How a face box becomes a model input.

    ``margin`` is the fraction of the box's width and height added on each side before cropping
    (0.2 matches the real-photo crops in ``realworld-photos``: box + 20% each side). ``auto``
    interpolation shrinks with area averaging and enlarges bilinearly: nearest-neighbour
    resizing cost real-world accuracy in the seed.
    """

    margin: float = 0.2
    size: int = 224
    interpolation: str = "auto"
    colour_order: str = "rgb"

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"CropSpec.margin {self.margin} out of range; use 0-1")
        if not 16 <= self.size <= 1024:
            raise ValueError(f"CropSpec.size {self.size} out of range; use 16-1024")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"CropSpec.interpolation {self.interpolation!r}; use one of {_INTERPOLATIONS}")
        if self.colour_order not in ("rgb", "bgr"):
            raise ValueError(f"CropSpec.colour_order {self.colour_order!r}; use rgb or bgr")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CropSpec:
        known = {k: data[k] for k in ("margin", "size", "interpolation", "colour_order") if k in data}
        return cls(**known)


def expand_box(box: Box, margin: float, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Grow ``box`` by ``margin`` on each side and clamp it to the frame; returns (x0, y0, x1, y1)."""
    x, y, w, h = box
    height, width = frame_shape[:2]
    dx, dy = w * margin, h * margin
    x0 = int(round(max(0.0, x - dx)))
    y0 = int(round(max(0.0, y - dy)))
    x1 = int(round(min(float(width), x + w + dx)))
    y1 = int(round(min(float(height), y + h + dy)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"box {box} lies outside a {width}x{height} frame")
    return x0, y0, x1, y1


def _interpolation_flag(name: str, src_size: int, dst_size: int) -> int:
    import cv2

    if name == "auto":
        return cv2.INTER_AREA if src_size > dst_size else cv2.INTER_LINEAR
    return {
        "area": cv2.INTER_AREA,
        "linear": cv2.INTER_LINEAR,
        "nearest": cv2.INTER_NEAREST,
        "cubic": cv2.INTER_CUBIC,
    }[name]


def crop_face(frame_bgr: np.ndarray, box: Box, spec: CropSpec) -> np.ndarray:
    """Cut the face out of a BGR (or grey) frame: box + margin, clamped, resized to a square.

    Returns a ``(size, size, 3)`` uint8 array in ``spec.colour_order``. Grey frames (IR cameras)
    are replicated to three channels, which is also how the trainer's greyscale augmentation looks.
    """
    import cv2

    if frame_bgr.ndim == 2:
        frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
    x0, y0, x1, y1 = expand_box(box, spec.margin, frame_bgr.shape)
    region = frame_bgr[y0:y1, x0:x1]
    flag = _interpolation_flag(spec.interpolation, max(region.shape[:2]), spec.size)
    crop = cv2.resize(region, (spec.size, spec.size), interpolation=flag)
    if spec.colour_order == "rgb":
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    return crop


def whole_image_box(shape: tuple[int, ...], margin: float) -> Box:
    """The face box of an image that is already a face crop made with ``margin`` on each side.

    ``crop_face(image, whole_image_box(image.shape, m), CropSpec(margin=m))`` is the whole image,
    so pre-cropped data sets go through the same function as detected faces.
    """
    height, width = shape[:2]
    w = width / (1.0 + 2.0 * margin)
    h = height / (1.0 + 2.0 * margin)
    return (int(round(width * margin / (1.0 + 2.0 * margin))),
            int(round(height * margin / (1.0 + 2.0 * margin))),
            max(1, int(round(w))), max(1, int(round(h))))


def scale_pixels(crops: np.ndarray) -> np.ndarray:
    """MobileNetV2 scaling of uint8 pixels to float32 in [-1, 1]."""
    return crops.astype(np.float32) / 127.5 - 1.0


def to_input(crops: np.ndarray, dtype: Any, scale: float = 0.0, zero_point: int = 0) -> np.ndarray:
    """Turn uint8 crops (N, H, W, 3) into a model input of ``dtype``, quantizing when needed.

    ``scale``/``zero_point`` are the input tensor's quantization parameters, read from the model.
    A quantized input of uint8 crops is looked up in a 256-entry table (``quantize_table``): the
    same values as scaling and quantizing every pixel, without float32 copies four times the size
    of the crops (per face 0.6 MB each; 5 MB each for the nine probe crops at start).
    """
    dtype = np.dtype(dtype)
    if dtype in (np.int8, np.uint8) and crops.dtype == np.uint8:
        # Indexing, not np.take: take first copies the indices to int64, eight times the crops' size.
        return quantize_table(dtype, scale, zero_point)[crops]
    scaled = scale_pixels(crops)
    if dtype == np.float32:
        return scaled
    if dtype in (np.int8, np.uint8):
        return _quantize(scaled, dtype, scale, zero_point)
    raise ValueError(f"unsupported model input dtype {dtype}")


@functools.lru_cache(maxsize=8)
def quantize_table(dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """``to_input`` of each uint8 pixel value 0-255 (the model input is a function of the pixel alone)."""
    table = _quantize(scale_pixels(np.arange(256, dtype=np.uint8)), dtype, scale, zero_point)
    table.flags.writeable = False  # shared by every call
    return table


def _quantize(scaled: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    if scale <= 0:
        raise ValueError("a quantized input needs a positive scale")
    info = np.iinfo(dtype)
    # Round half up, not half to even: MobileNetV2's scale (1/127.5, zero point -1) puts every
    # pixel exactly on a .5, and half-to-even would merge pixel values 0 and 1, 2 and 3, ...
    quantized = np.floor(scaled / scale + zero_point + 0.5)
    return np.clip(quantized, info.min, info.max).astype(dtype)


def read_image(path: str) -> np.ndarray:
    """Read an image file as a BGR uint8 array, or raise ImageError naming the file."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageError(f"{path}: cannot read or decode this image; is it a valid JPEG/PNG?")
    return image
