"""Face detector plug-ins; the Haar cascade detector runs on a downscaled, equalised grey frame."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DetectorConfig
from .errors import ConfigError
from .preprocess import Box


@dataclass(frozen=True)
class Detection:
    """A face box in full-frame pixels and the detector's evidence for it (Haar neighbour count)."""

    box: Box
    score: float
    source: str = ""


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax1, bx1) - max(a[0], b[0])
    ih = min(ay1, by1) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def _contains_centre(outer: Box, inner: Box) -> bool:
    cx, cy = inner[0] + inner[2] / 2, inner[1] + inner[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def non_max_suppression(detections: list[Detection], threshold: float = 0.3) -> list[Detection]:
    """Keep the strongest of overlapping boxes; a box whose centre lies inside a kept one goes too,
    because different cascades frame one face at slightly different scales."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: (-d.score, -d.box[2])):
        if all(iou(det.box, k.box) < threshold and not _contains_centre(k.box, det.box)
               and not _contains_centre(det.box, k.box) for k in kept):
            kept.append(det)
    return kept


def resolve_cascade(name: str) -> Path:
    """A cascade name from cv2.data (``frontalface_alt2``) or a path to an XML file."""
    import cv2

    candidate = Path(name).expanduser()
    if candidate.suffix == ".xml" or os.sep in name:
        if not candidate.is_file():
            raise ConfigError(f"[detector] cascades: {name}: file not found; give a cascade XML path "
                              f"or a name such as frontalface_default")
        return candidate
    bundled = Path(cv2.data.haarcascades) / f"haarcascade_{name}.xml"
    if not bundled.is_file():
        names = sorted(p.stem.replace("haarcascade_", "")
                       for p in Path(cv2.data.haarcascades).glob("haarcascade_*.xml"))
        raise ConfigError(f"[detector] cascades: {name}: no such OpenCV cascade "
                          f"(OpenCV 5 ships none: install opencv-python-headless<5); "
                          f"known: {', '.join(names)}")
    return bundled


class HaarDetector:
    """OpenCV Haar cascades, merged with non-maximum suppression.

    Detection runs on a grey copy of the frame scaled to ``detect_width`` (the slow stage on a Pi,
    so it works on as few pixels as will still find a ``min_face`` face) and boxes are mapped back
    to full-frame pixels. ``profileface`` also runs on the mirrored frame, since it only knows one side.
    """

    def __init__(self, config: DetectorConfig) -> None:
        import cv2

        self.config = config
        self._cascades: list[tuple[str, cv2.CascadeClassifier]] = []
        for name in config.cascades:
            path = resolve_cascade(name)
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise ConfigError(f"[detector] cascades: {name}: {path} is not a valid cascade XML file")
            self._cascades.append((name, cascade))
        if not self._cascades:
            raise ConfigError("[detector] cascades: empty; name at least one, e.g. frontalface_default")

    def grey(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """The frame as the cascades see it, and the factor from its pixels back to the frame's."""
        import cv2

        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        width = grey.shape[1]
        factor = 1.0
        if self.config.detect_width and width > self.config.detect_width:
            factor = width / self.config.detect_width
            size = (self.config.detect_width, max(1, int(round(grey.shape[0] / factor))))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        if self.config.equalize:
            grey = cv2.equalizeHist(grey)
        return grey, factor

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces in a BGR or grey frame, strongest first."""
        grey, factor = self.grey(frame)
        min_side = max(8, int(round(self.config.min_face / factor)))
        found: list[Detection] = []
        for name, cascade in self._cascades:
            views = [(grey, False)]
            if name == "profileface":
                views.append((grey[:, ::-1].copy(), True))
            for image, mirrored in views:
                boxes, neighbours = cascade.detectMultiScale2(
                    image, scaleFactor=self.config.scale_factor,
                    minNeighbors=self.config.min_neighbors, minSize=(min_side, min_side))
                for (x, y, w, h), n in zip(boxes, np.ravel(neighbours), strict=False):
                    if mirrored:
                        x = image.shape[1] - x - w
                    box = (int(round(x * factor)), int(round(y * factor)),
                           int(round(w * factor)), int(round(h * factor)))
                    found.append(Detection(box, float(n), name))
        return non_max_suppression(found)


DETECTORS: dict[str, type] = {"haar": HaarDetector}


def build_detector(config: DetectorConfig) -> HaarDetector:
    """The detector plug-in named by ``[detector] type``."""
    return DETECTORS[config.type](config)
