"""YuNet face detector plug-in: OpenCV's ``cv2.FaceDetectorYN`` on an ONNX model (opencv-python >= 4.8).

A YuNet model lives in a directory of its own (``model.onnx``, ``model.json``, ``LICENSE``), as the
SSD models do; ``model.json`` gives the licence, the source commit, the sha256 of the model file,
the framing that makes its boxes look like the Haar detector's (YuNet's boxes are tighter, so the
classifier's crop contract needs it) and the score threshold and long side measured for a gate.
The import (``make detector-models``) is ``converters/yunet_models.py``.

    [detector]
    type = yunet
    yunet_model = yunet-n
    yunet_long_side = 320

The frame is scaled down to ``yunet_long_side`` (YuNet finds faces of about 10-300 px, so a face
filling a 640x480 frame is found on the smaller copy), boxes and the five landmarks (right eye,
left eye, nose tip, right and left mouth corners) are mapped back to frame pixels, the box is
reframed, cut to the frame and dropped below ``min_face``. Debian's apt OpenCV (4.6) cannot read
these models: install opencv-python-headless >= 4.8 from pip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DetectorConfig
from ..errors import ConfigError, ModelError
from ..geometry import apply_framing, clip_box
from .base import Detection, read_model_dir, resolve_model_dir

log = logging.getLogger(__name__)

MIN_OPENCV = (4, 8)
# Most faces YuNet reports in one frame (its top_k); a gate sees a handful.
TOP_K = 200


@dataclass(frozen=True)
class YunetModel:
    """A verified YuNet model: its file, framing, measured defaults and metadata."""

    name: str
    path: Path
    framing: tuple[float, float, float]  # centre dx, dy (in box widths) and size factor
    default_score: float
    default_long_side: int
    sha256: str
    metadata: dict[str, Any]


def opencv_version() -> tuple[int, int]:
    """OpenCV's (major, minor) version."""
    import cv2

    parts = cv2.__version__.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0


def check_opencv() -> str:
    """OpenCV's version string when it can run YuNet; a ModelError naming the fix when it cannot."""
    import cv2

    if opencv_version() < MIN_OPENCV or not hasattr(cv2, "FaceDetectorYN"):
        raise ModelError(f"[detector] type = yunet needs OpenCV >= {MIN_OPENCV[0]}.{MIN_OPENCV[1]} with "
                         f"cv2.FaceDetectorYN; this is OpenCV {cv2.__version__} ({cv2.__file__}), "
                         f"which cannot read YuNet (Debian's apt python3-opencv is 4.6): "
                         f"pip install 'opencv-python-headless>=4.8,<5', or use type = ssd")
    return cv2.__version__


def resolve_yunet_model(name: str) -> Path:
    """A bundled YuNet name (``yunet-n``) or a path to a YuNet model directory."""
    return resolve_model_dir(name, "model.onnx", "yunet_model", kind="YuNet")


def _yunet_fields(meta: dict[str, Any]) -> tuple[tuple[float, float, float], float, int]:
    dx, dy, scale = (float(v) for v in meta["framing"])
    return (dx, dy, scale), float(meta["default_score"]), int(meta["default_long_side"])


def load_yunet_model(name: str) -> YunetModel:
    """Read and verify a YuNet model directory; failures name the file and the fix."""
    directory = resolve_yunet_model(name)
    (framing, score, long_side), meta, path, sha = read_model_dir(directory, "model.onnx", _yunet_fields)
    return YunetModel(directory.name, path, framing, score, long_side, sha, meta)


def scaled_size(shape: tuple[int, ...], long_side: int) -> tuple[int, int, float]:
    """(width, height) of the frame scaled down so its long side is at most ``long_side`` (0: as it
    is), and the factor from those pixels back to the frame's."""
    h, w = shape[:2]
    if not long_side or max(h, w) <= long_side:
        return w, h, 1.0
    factor = max(h, w) / long_side
    return max(1, int(round(w / factor))), max(1, int(round(h / factor))), factor


class YunetFaceModel:
    """One YuNet model in a ``cv2.FaceDetectorYN``; ``detect`` returns raw faces in frame pixels."""

    def __init__(self, model: YunetModel, score: float, nms_threshold: float) -> None:
        import cv2

        check_opencv()
        self.model = model
        self.score = score
        try:
            self.detector = cv2.FaceDetectorYN.create(str(model.path), "", (320, 320), score,
                                                      nms_threshold, TOP_K)
        except cv2.error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise ModelError(f"{model.path}: OpenCV {cv2.__version__} cannot load it as a YuNet model "
                             f"({first}); copy the model directory again or use a fixed-size YuNet "
                             f"ONNX export (the _dynamic ones do not load)") from None
        self._size = (320, 320)

    def detect(self, frame_bgr: np.ndarray, long_side: int) -> np.ndarray:
        """Faces (N, 15: x, y, w, h, five x, y landmarks, score) in frame pixels, strongest first."""
        import cv2

        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        width, height, factor = scaled_size(frame_bgr.shape, long_side)
        small = frame_bgr if factor == 1.0 else cv2.resize(frame_bgr, (width, height),
                                                           interpolation=cv2.INTER_AREA)
        if (width, height) != self._size:
            self.detector.setInputSize((width, height))
            self._size = (width, height)
        _, faces = self.detector.detect(small)
        if faces is None or not len(faces):
            return np.zeros((0, 15), np.float32)
        faces = np.asarray(faces, np.float32).copy()
        faces[:, :14] *= factor
        return faces[np.argsort(-faces[:, 14])]


class YunetDetector:
    """Face detector plug-in over one YuNet model (``[detector] type = yunet``)."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        model = load_yunet_model(config.yunet_model)
        score = config.yunet_min_score or model.default_score
        if not 0.0 < score < 1.0:
            raise ConfigError(f"[detector] yunet_min_score = {score}: must be between 0 and 1")
        self.face_model = YunetFaceModel(model, score, config.nms_threshold)
        self.framing = model.framing if config.calibrate_boxes else (0.0, 0.0, 1.0)
        import cv2

        log.info("detector: yunet %s (score %.2f, long side %s) via OpenCV %s", model.name, score,
                 config.yunet_long_side or "full frame", cv2.__version__)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces in a BGR (or grey) frame, strongest first, with their five landmarks."""
        found: list[Detection] = []
        for face in self.face_model.detect(frame, self.config.yunet_long_side):
            framed = apply_framing(tuple(float(v) for v in face[:4]), self.framing)
            if framed[2] < self.config.min_face:
                continue
            clipped = clip_box(framed, frame.shape)
            if clipped is not None:
                marks = tuple((float(face[4 + 2 * i]), float(face[5 + 2 * i])) for i in range(5))
                found.append(Detection(clipped, float(face[14]), self.face_model.model.name, marks))
        return found
