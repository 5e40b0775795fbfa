"""What every face detector plug-in returns (Detection) and offers (Detector), and how boxes merge."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from ..bundle import verify_sha256
from ..errors import ConfigError, ModelError
from ..geometry import contains_centre, iou
from ..preprocess import Box

Fields = TypeVar("Fields")

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


def resolve_model_dir(name: str, model_file: str, key: str, kind: str = "detector") -> Path:
    """A bundled detector model's name (``yunet-n``) or a path to a model directory; an unknown name
    is a ConfigError on ``[detector] key`` that lists the bundled ``kind`` models."""
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        return candidate
    bundled = DETECTOR_MODELS / name
    if (bundled / model_file).is_file():
        return bundled
    known = sorted(p.parent.name for p in DETECTOR_MODELS.glob(f"*/{model_file}"))
    raise ConfigError(f"[detector] {key}: {name}: no such {kind} model; use one of "
                      f"{', '.join(known) or '(none bundled: run make detector-models)'} or a directory "
                      f"holding {model_file} and model.json")


def read_model_dir(directory: Path, model_file: str, fields: Callable[[dict[str, Any]], Fields]
                   ) -> tuple[Fields, dict[str, Any], Path, str]:
    """A detector model directory's ``fields(model.json)``, the JSON itself, the model file and its
    verified sha256; every failure is a ModelError naming the file and the fix."""
    meta_path, model_path = directory / "model.json", directory / model_file
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        parsed = fields(meta)
        expected = str(meta["sha256"])
    except FileNotFoundError:
        raise ModelError(f"{meta_path}: missing; a detector model directory needs {model_file} and "
                         f"model.json (make detector-models writes the bundled ones)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{meta_path}: unreadable or missing a field ({type(exc).__name__}: {exc}); "
                         f"copy the detector model directory again") from None
    if not model_path.is_file():
        raise ModelError(f"{model_path}: missing; copy the detector model directory again")
    return parsed, meta, model_path, verify_sha256(model_path, expected, "the file is corrupt; copy it again")
