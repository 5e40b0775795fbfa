"""Face detector plug-ins: registry, boxes and NMS; the Haar cascade detector (on a downscaled grey frame)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import DetectorConfig
from .errors import ConfigError
from .eyes import EyePairStage
from .preprocess import Box

# (width, border) -> that grey copy of the frame, padded, with its pad and scale factor.
FrameView = Callable[[int, float], tuple[np.ndarray, int, float]]


@dataclass(frozen=True)
class Detection:
    """A face box in full-frame pixels and the detector's evidence for it (Haar neighbour count).

    ``landmarks``: the detector's face points in full-frame pixels, where it gives them (YuNet:
    right eye, left eye, nose tip, right and left mouth corners; BlazeFace: right eye, left eye,
    nose tip, mouth, right and left ear tragion); None for Haar.
    """

    box: Box
    score: float
    source: str = ""
    landmarks: tuple[tuple[float, float], ...] | None = None


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


# How each source's boxes differ from frontalface_default's on the same faces: centre shift
# (dx, dy) and size factor, in units of the source's box width: medians over the faces/ and
# realworld-photos images (seed 0) where both fired (alt2 125, profileface 41; the profile's
# sideways shift cancels over both sides). Eye-pair boxes are calibrated in eyes.py. Applied
# when [detector] calibrate_boxes is on, so the classifier sees a face framed alike whichever
# stage found it.
FRAMING: dict[str, tuple[float, float, float]] = {
    "frontalface_default": (0.0, 0.0, 1.0),
    "frontalface_alt2": (0.0, 0.005, 1.03),
    "profileface": (0.0, 0.03, 0.87),
}


def reframe(box: Box, source: str) -> Box:
    """``box`` moved and scaled the way ``source``'s boxes differ from frontalface_default's."""
    return apply_framing(box, FRAMING.get(source, (0.0, 0.0, 1.0)))


def apply_framing(box: tuple[float, float, float, float], framing: tuple[float, float, float]) -> Box:
    """An (x, y, w, h) box with its centre moved by (dx, dy) box widths and its size scaled, as
    integer pixels: how one detector's boxes are made to look like another's."""
    dx, dy, scale = framing
    x, y, w, h = box
    cx, cy = x + w / 2.0 + dx * w, y + h / 2.0 + dy * w
    w2, h2 = w * scale, h * scale
    return int(round(cx - w2 / 2.0)), int(round(cy - h2 / 2.0)), int(round(w2)), int(round(h2))


def clip_box(box: Box, shape: tuple[int, ...]) -> Box | None:
    """``box`` cut to the frame, or None when too little of it is left to be a face."""
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(shape[1], box[0] + box[2]), min(shape[0], box[1] + box[3])
    if (x1 - x0) * (y1 - y0) < 0.5 * box[2] * box[3]:
        return None
    return x0, y0, x1 - x0, y1 - y0


def load_cascades(names: tuple[str, ...]) -> list[tuple[str, object]]:
    """Named cascades as (name, cv2.CascadeClassifier), with ConfigErrors that say what to fix."""
    import cv2

    loaded: list[tuple[str, object]] = []
    for name in names:
        path = resolve_cascade(name)
        try:
            cascade = cv2.CascadeClassifier(str(path))
        # Malformed XML raises here (as cv2.error, or a SystemError wrapping it) instead of
        # giving an empty cascade.
        except (cv2.error, SystemError) as exc:
            detail = str(exc.__cause__ or exc).strip()
            first = detail.splitlines()[0] if detail else type(exc).__name__
            raise ConfigError(f"[detector] cascades: {name}: {path} is not a valid cascade XML file "
                              f"({first}); give a valid cascade file or a built-in name") from None
        if cascade.empty():
            raise ConfigError(f"[detector] cascades: {name}: {path} is not a valid cascade XML file")
        loaded.append((name, cascade))
    return loaded


class HaarDetector:
    """OpenCV Haar cascades, merged with non-maximum suppression.

    Detection runs on a grey copy of the frame scaled to ``detect_width`` (the slow stage on a Pi,
    so it works on as few pixels as will still find a ``min_face`` face) and boxes are mapped back
    to full-frame pixels. ``profileface`` also runs on the mirrored frame, since it only knows one side.
    With ``eye_cascades`` an eye-pair stage adds faces whose lower half is hidden (by a mask).
    """

    def __init__(self, config: DetectorConfig) -> None:
        import cv2

        self.config = config
        self._cascades = load_cascades(config.cascades)
        if not self._cascades:
            raise ConfigError("[detector] cascades: empty; name at least one, e.g. frontalface_default")
        self._closeup = load_cascades(config.closeup_cascades) if config.closeup_cascades else []
        self._eyes: EyePairStage | None = None
        if config.eye_cascades:
            eyes = [c for _, c in load_cascades(config.eye_cascades)]
            self._eyes = EyePairStage(eyes, config.scale_factor, config.eye_min_neighbors)
        self._clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8))

    def grey(self, frame: np.ndarray, width: int | None = None) -> tuple[np.ndarray, float]:
        """The frame as the cascades see it, and the factor from its pixels back to the frame's."""
        import cv2

        width = self.config.detect_width if width is None else width
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        factor = 1.0
        if width and grey.shape[1] > width:
            factor = grey.shape[1] / width
            size = (width, max(1, int(round(grey.shape[0] / factor))))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        if self.config.equalize:
            grey = self._clahe.apply(grey) if self.config.clahe else cv2.equalizeHist(grey)
        return grey, factor

    @staticmethod
    def _padded(grey: np.ndarray, border: float) -> tuple[np.ndarray, int]:
        """``grey`` with its edge pixels repeated ``border`` of its width on each side, and that
        pad in pixels."""
        import cv2

        pad = int(round(border * grey.shape[1]))
        if pad == 0:
            return grey, 0
        return cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE), pad

    def _cascade_faces(self, grey: np.ndarray, min_side: int, cascades: list | None = None
                       ) -> list[Detection]:
        """Face-cascade boxes in ``grey`` pixels (default cascades: [detector] cascades)."""
        found: list[Detection] = []
        for name, cascade in self._cascades if cascades is None else cascades:
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
                    found.append(Detection((int(x), int(y), int(w), int(h)), float(n), name))
        return found

    def _closeup_faces(self, view: FrameView, frame_shape: tuple[int, ...]) -> list[Detection]:
        """Faces filling the frame, found on a small copy padded with its own edge pixels.

        A face right at the camera is cut by the frame's edges, so no Haar window fits around it;
        padding gives the window room, and the small copy keeps the pass cheap (only large
        windows are tried). Measured on faces/ (200 a class): improperly masked found 0.945 ->
        0.975 with the two-split eye cascades, false positives on scenes/ unchanged.
        """
        grey, pad, factor = view(self.config.closeup_width, self.config.closeup_border)
        min_side = max(8, int(round(self.config.closeup_min_fraction * min(frame_shape[:2]) / factor)))
        return [Detection(_to_frame(d.box, pad, factor), d.score, d.source)
                for d in self._cascade_faces(grey, min_side, self._closeup)]

    def _eye_faces(self, view: FrameView) -> list[Detection]:
        """Eye-pair face boxes in full-frame pixels."""
        assert self._eyes is not None
        grey, pad, factor = view(self.config.eye_detect_width or self.config.detect_width,
                                 self.config.border)
        min_side = max(8, int(round(self.config.min_face / factor)))
        # Below a frontal box's neighbour count, so NMS keeps the frontal box where both fired.
        return [Detection(_to_frame(p.box, pad, factor), p.score / 10.0, "eyes")
                for p in self._eyes.find(grey, min_side)]

    def _views(self, frame: np.ndarray) -> FrameView:
        """The frame's grey copies by (width, border), each made once per frame.

        The main pass and the eye-pair stage usually ask for the same copy (both 320 px by
        default), so the colour conversion, resize, equalisation and padding happen once.
        """
        import cv2

        mono = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        made: dict[tuple[int, float], tuple[np.ndarray, int, float]] = {}

        def view(width: int, border: float) -> tuple[np.ndarray, int, float]:
            if (width, border) not in made:
                grey, factor = self.grey(mono, width)
                made[(width, border)] = (*self._padded(grey, border), factor)
            return made[(width, border)]

        return view

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces in a BGR or grey frame, strongest first."""
        view = self._views(frame)
        grey, pad, factor = view(self.config.detect_width, self.config.border)
        min_side = max(8, int(round(self.config.min_face / factor)))
        found = [Detection(_to_frame(d.box, pad, factor), d.score, d.source)
                 for d in self._cascade_faces(grey, min_side)]
        if self._closeup:
            found.extend(self._closeup_faces(view, frame.shape))
        if self._eyes is not None:
            found.extend(self._eye_faces(view))
        kept: list[Detection] = []
        for det in found:
            box = reframe(det.box, det.source) if self.config.calibrate_boxes else det.box
            clipped = clip_box(box, frame.shape)
            if clipped is not None:
                kept.append(Detection(clipped, det.score, det.source))
        return non_max_suppression(kept)


def _to_frame(box: Box, pad: int, factor: float) -> Box:
    """A box in padded detection pixels mapped back to full-frame pixels."""
    x, y, w, h = box
    return (int(round((x - pad) * factor)), int(round((y - pad) * factor)),
            int(round(w * factor)), int(round(h * factor)))


def _ssd_detector(config: DetectorConfig) -> Detector:
    from .ssd import SsdDetector  # the TFLite runtime loads only when an SSD is asked for

    return SsdDetector(config)


def _yunet_detector(config: DetectorConfig) -> Detector:
    from .yunet import YunetDetector  # cv2.FaceDetectorYN is checked only when YuNet is asked for

    return YunetDetector(config)


class Detector(Protocol):
    """What the frame loop needs of a detector plug-in."""

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


DETECTORS: dict[str, Callable[[DetectorConfig], Detector]] = {"haar": HaarDetector, "ssd": _ssd_detector,
                                                               "yunet": _yunet_detector}


def build_detector(config: DetectorConfig) -> Detector:
    """The detector plug-in named by ``[detector] type``."""
    return DETECTORS[config.type](config)
