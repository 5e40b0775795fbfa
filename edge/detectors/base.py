"""What every face detector plug-in returns (Detection) and offers (Detector), and how boxes merge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..geometry import contains_centre, iou
from ..preprocess import Box

# The bundled detector models, a directory each (the SSDs' model.tflite, YuNet's model.onnx).
DETECTOR_MODELS = Path(__file__).resolve().parent.parent / "models" / "detectors"


@dataclass(frozen=True)
class Detection:
    """A face box in full-frame pixels and the detector's evidence for it (Haar neighbour count).

    ``landmarks``: the detector's face points in full-frame pixels, where it gives them (YuNet:
    right eye, left eye, nose tip, right and left mouth corners; BlazeFace: right eye, left eye,
    nose tip, mouth, right and left ear tragion); None for Haar. What alignment or a nose-region
    crop would use.
    """

    box: Box
    score: float
    source: str = ""
    landmarks: tuple[tuple[float, float], ...] | None = None


class Detector(Protocol):
    """What the frame loop needs of a detector plug-in."""

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


def non_max_suppression(detections: list[Detection], threshold: float = 0.3) -> list[Detection]:
    """Keep the strongest of overlapping boxes; a box whose centre lies inside a kept one goes too,
    because different cascades frame one face at slightly different scales."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: (-d.score, -d.box[2])):
        if all(iou(det.box, k.box) < threshold and not contains_centre(k.box, det.box)
               and not contains_centre(det.box, k.box) for k in kept):
            kept.append(det)
    return kept
