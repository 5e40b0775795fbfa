"""Face detector plug-ins, Frigate style: ``[detector] type`` picks one from this registry.

Each plug-in is a class built once from the ``[detector]`` section with a ``detect(frame)`` method
returning ``Detection``s in full-frame pixels, framed alike whichever detector found them. A plug-in's
module is imported only when it is asked for (the TFLite runtime only for the SSD)::

    detector = build_detector(config.detector)
    faces = detector.detect(frame)
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Detection, Detector, non_max_suppression

__all__ = ["DETECTOR_TYPES", "Detection", "Detector", "build_detector", "non_max_suppression"]

# type -> (module in this package, class): the config's ``type`` choices come from here.
_PLUGINS: dict[str, tuple[str, str]] = {
    "yunet": ("yunet", "YunetDetector"),  # the default; cv2.FaceDetectorYN: OpenCV >= 4.8
    "ssd": ("ssd", "SsdDetector"),
    "haar": ("haar", "HaarDetector"),
}
DETECTOR_TYPES = tuple(_PLUGINS)


def build_detector(config: Any) -> Detector:
    """The detector plug-in named by ``config.type`` (a ``DetectorConfig``), built from ``config``."""
    module, name = _PLUGINS[config.type]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)(config)
