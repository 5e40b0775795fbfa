"""The alert decision a bundle ships with: calibrated probabilities and a cost-weighted label choice.

A model's softmax is over-confident and its argmax treats a false alarm (a properly masked person
called improperly masked) like any other mistake. The converter measures both on the validation
split and stores the answer in ``model.json``::

    "decision": {"temperature": 1.6, "weights": {"improperly_masked": 0.7}, ...}

The edge applies the temperature to every probability (so ``min_confidence`` means what it says)
and picks the label with the largest weighted probability. A bundle without ``decision`` keeps
plain softmax and argmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError

# An int8 softmax reports multiples of 1/256, so its 0 means "below about 1/512", not "impossible":
# logs are taken of at least this.
PROBABILITY_FLOOR = 1e-3


@dataclass(frozen=True)
class DecisionRule:
    """Temperature and per-label weights, in the bundle's label order."""

    temperature: float
    weights: tuple[float, ...]

    @classmethod
    def plain(cls, labels: tuple[str, ...]) -> DecisionRule:
        """Softmax as it is and argmax: what a bundle without a decision gets."""
        return cls(1.0, (1.0,) * len(labels))

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], labels: tuple[str, ...], where: str = "model.json"
                      ) -> DecisionRule:
        """The rule in ``metadata["decision"]``; a ModelError naming the field when it is invalid."""
        decision = metadata.get("decision")
        if decision is None:
            return cls.plain(labels)
        try:
            temperature = float(decision.get("temperature", 1.0))
            weights = {str(k): float(v) for k, v in decision.get("weights", {}).items()}
        except (AttributeError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: decision is not valid ({exc}); re-run maskipy-convert") from None
        unknown = sorted(set(weights) - set(labels))
        bad = [v for v in (temperature, *weights.values()) if not math.isfinite(v) or v <= 0]
        if unknown or bad:
            raise ModelError(f"{where}: decision {decision}: "
                             + (f"labels {', '.join(unknown)} are not the model's" if unknown else
                                "temperature and weights must be finite and > 0")
                             + "; re-run maskipy-convert")
        return cls(temperature, tuple(weights.get(label, 1.0) for label in labels))

    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        """Softmax probabilities (N, C) re-scaled by the temperature: softmax(log p / T)."""
        if self.temperature == 1.0:
            return probs
        logits = np.log(np.clip(probs, PROBABILITY_FLOOR, 1.0)) / self.temperature
        logits -= logits.max(axis=-1, keepdims=True)
        scaled = np.exp(logits)
        return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)

    def choose(self, probs: np.ndarray) -> np.ndarray:
        """The chosen label index per row of calibrated probabilities (N, C)."""
        return np.argmax(probs * np.asarray(self.weights, np.float32), axis=-1)


def expected_calibration_error(probs: np.ndarray, true_index: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: how far the stated confidence is from the accuracy, averaged over 15 bins."""
    if len(probs) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == true_index
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)
