"""Choose a bundle's decision rule on the validation split: temperature, then the improper weight.

The temperature minimises the negative log-likelihood of the int8 model's answers (so a stated
confidence of 0.9 is right about 9 times in 10); the weight on ``improperly_masked`` minimises

    false_alarm_cost * (share of properly masked faces called improperly masked)
    + missed_improper_cost * (share of improperly masked faces called something else)

over the validation crops. Both go into model.json (``decision``) and the edge applies them
(``maskipy.edge.decision``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskipy.edge.classifier.decision import DecisionRule, expected_calibration_error

TEMPERATURES = np.geomspace(0.25, 8.0, 81)
WEIGHTS = np.geomspace(0.2, 5.0, 57)
PROPER, IMPROPER = "properly_masked", "improperly_masked"


def fit_temperature(probs: np.ndarray, true_index: np.ndarray) -> float:
    """The temperature (a grid over 0.25-8) with the lowest negative log-likelihood."""
    labels = tuple(str(i) for i in range(probs.shape[1]))

    def nll(t: float) -> float:
        calibrated = DecisionRule(float(t), (1.0,) * len(labels)).calibrate(probs)
        return float(-np.mean(np.log(np.clip(calibrated[np.arange(len(probs)), true_index], 1e-12, 1))))

    return float(min(TEMPERATURES, key=nll))


def rates(chosen: np.ndarray, true_index: np.ndarray, proper: int, improper: int) -> tuple[float, float]:
    """(false-alarm rate, missed-improper rate) of chosen label indices."""
    is_proper, is_improper = true_index == proper, true_index == improper
    false_alarm = float(np.mean(chosen[is_proper] == improper)) if is_proper.any() else 0.0
    missed = float(np.mean(chosen[is_improper] != improper)) if is_improper.any() else 0.0
    return false_alarm, missed


def fit_decision(probs: np.ndarray, true_labels: list[str], labels: tuple[str, ...],
                 false_alarm_cost: float, missed_improper_cost: float) -> dict[str, Any]:
    """The decision for model.json, with what it did on the validation crops it was chosen on."""
    keep = np.array([t in labels for t in true_labels])
    probs = probs[keep]
    true_index = np.array([labels.index(t) for t, k in zip(true_labels, keep, strict=True) if k])
    temperature = fit_temperature(probs, true_index)
    plain = DecisionRule.plain(labels)
    calibrated = DecisionRule(temperature, plain.weights).calibrate(probs)
    decision: dict[str, Any] = {"temperature": round(temperature, 4), "weights": {}}
    summary: dict[str, Any] = {
        "crops": int(len(probs)),
        "ece_before": round(expected_calibration_error(probs, true_index), 4),
        "ece_after": round(expected_calibration_error(calibrated, true_index), 4)}
    if PROPER in labels and IMPROPER in labels:
        proper, improper = labels.index(PROPER), labels.index(IMPROPER)

        def with_weight(w: float) -> DecisionRule:
            return DecisionRule(temperature, tuple(w if i == improper else 1.0 for i in range(len(labels))))

        def cost(w: float) -> tuple[float, float]:
            fa, miss = rates(with_weight(w).choose(calibrated), true_index, proper, improper)
            # Ties go to the weight nearest 1 (plain argmax).
            return false_alarm_cost * fa + missed_improper_cost * miss, abs(np.log(w))

        weight = float(min(WEIGHTS, key=cost))
        decision["weights"] = {IMPROPER: round(weight, 4)}
        before = rates(calibrated.argmax(1), true_index, proper, improper)
        after = rates(with_weight(weight).choose(calibrated), true_index, proper, improper)
        summary.update({"costs": {"false_alarm": false_alarm_cost, "missed_improper": missed_improper_cost},
                        "argmax": {"false_alarm_rate": round(before[0], 4),
                                   "improper_recall": round(1 - before[1], 4)},
                        "chosen": {"false_alarm_rate": round(after[0], 4),
                                   "improper_recall": round(1 - after[1], 4)}})
    decision["validation"] = summary
    return decision
