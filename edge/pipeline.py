"""One frame's faces: detections cut by the bundle's crop contract, classified into observations.

``maskipy-edge run``, ``check`` and the benches share these, so they judge the same crops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from .bundle import Bundle
from .detectors import Detection
from .preprocess import Box, crop_face
from .tracking import Observation

log = logging.getLogger(__name__)


def crop_faces(frame: np.ndarray, detections: list[Detection],
               bundle: Bundle) -> tuple[list[Box], np.ndarray]:
    """Boxes and uint8 crops of the detections, cut by the bundle's crop contract."""
    boxes: list[Box] = []
    crops: list[np.ndarray] = []
    for detection in detections:
        try:
            crops.append(crop_face(frame, detection.box, bundle.crop_spec))
        except ValueError as exc:
            log.debug("skipping box %s: %s", detection.box, exc)
            continue
        boxes.append(detection.box)
    size = bundle.crop_spec.size
    return boxes, (np.stack(crops) if crops else np.empty((0, size, size, 3), np.uint8))


def to_observations(boxes: list[Box], probs: np.ndarray, labels: tuple[str, ...],
                    choose: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Observation]:
    """One Observation per box: the label ``choose`` picks (default: the most probable) and its
    probability."""
    best = (choose or (lambda p: np.argmax(p, axis=1)))(probs) if len(boxes) else []
    return [Observation(box, labels[int(i)], float(p[int(i)])) for box, i, p in zip(boxes, best, probs,
                                                                                     strict=True)]
