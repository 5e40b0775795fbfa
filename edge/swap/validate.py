"""Validating a bundle before it may run: checksum, runtime load, labels, golden output, probe faces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..bundle import Bundle
from ..config import COUNTED_CLASSES, load_edge_config
from ..errors import ModelError

if TYPE_CHECKING:  # the interpreter is imported only when a bundle is validated
    from ..classifier.tflite import TFLiteClassifier

# One number for both sides: the tolerance maskipy-convert stores with a golden answer, and the one
# a deploy assumes for a model.json that names none.
GOLDEN_TOLERANCE = 0.05


def golden_crop(size: int, seed: int = 0) -> np.ndarray:
    """The golden crop: seeded uniform noise, one ``size`` x ``size`` RGB uint8 crop in a batch of one.

    maskipy-convert stores the model's answer to it in model.json and a deploy checks the answer
    again, so both sides must make the very same pixels; this is the one recipe (converters import it).
    """
    return np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)


@dataclass(frozen=True)
class Validation:
    """A bundle that passed every check, and what was checked."""

    bundle: Bundle
    runtime: str
    golden_diff: float | None
    probes: str = "probes not checked"

    def describe(self) -> str:
        golden = ("no golden output in model.json" if self.golden_diff is None
                  else f"golden output within {self.golden_diff:.4f}")
        return (f"sha256 {self.bundle.sha256[:12]}, labels {','.join(self.bundle.labels)}, "
                f"loads in {self.runtime}, {golden}, {self.probes}")


def _golden(bundle: Bundle) -> tuple[int, np.ndarray | None, float]:
    """(seed, expected probabilities or None, tolerance) from model.json's optional ``golden``."""
    golden = bundle.metadata.get("golden")
    if golden is None:
        return 0, None, 0.0
    try:
        return (int(golden["seed"]), np.asarray(golden["probabilities"], dtype=np.float32),
                float(golden.get("tolerance", GOLDEN_TOLERANCE)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{bundle.json_path}: invalid golden field ({exc}); "
                         f"re-run maskipy-convert") from None


def check_golden(classifier: TFLiteClassifier, bundle: Bundle) -> float | None:
    """Run the golden crop; the largest difference from model.json's probabilities (None: none given).

    Without a golden entry the crop is still run once, so a model that loads but cannot infer
    is refused here rather than in the service.
    """
    seed, expected, tolerance = _golden(bundle)
    try:
        probs = classifier.scores(golden_crop(bundle.crop_spec.size, seed))
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{bundle.model_path}: inference failed ({exc}); re-run maskipy-convert") from None
    if not np.all(np.isfinite(probs)):
        raise ModelError(f"{bundle.model_path}: inference gives non-finite scores; re-run maskipy-convert")
    if expected is None:
        return None
    if expected.shape != probs.shape:
        raise ModelError(f"{bundle.json_path}: golden probabilities have shape {expected.shape}, the model "
                         f"gives {probs.shape}; re-run maskipy-convert")
    diff = float(np.max(np.abs(probs - expected)))
    if diff > tolerance:
        raise ModelError(f"{bundle.model_path}: golden output differs by {diff:.4f} (tolerance {tolerance}); "
                         f"the model does not compute what maskipy-convert measured; copy it again or "
                         f"re-convert for this runtime")
    return diff


def validate_bundle(location: str | Path, labels: Sequence[str] = COUNTED_CLASSES,
                    reject_label: str = "not_face") -> Validation:
    """Checksum, TFLite load, input contract, labels against the config, golden inference, labels by
    meaning (probe crops): or ModelError."""
    from ..classifier.load import load_model

    config = load_edge_config().replace(
        "classifier", labels=tuple(labels), reject_label=reject_label, num_threads=1)
    # Probes are checked here; a bundle without its own is checked with the kit's, so removing
    # probes.npz cannot let permuted labels through a deploy.
    bundle, classifier = load_model(config, location, kit_probes=True)
    golden = check_golden(classifier, bundle)
    return Validation(bundle, classifier.runtime, golden, getattr(classifier, "probe_summary", ""))
