"""Does the converted model still answer like the float one? Agreement, accuracy, per-class deltas."""

from __future__ import annotations

from typing import Any

import numpy as np

from maskipy.edge.bundle import load_bundle
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.errors import ModelError
from maskipy.edge.preprocess import scale_pixels


def _recall(true: np.ndarray, pred: np.ndarray, index: int) -> float | None:
    mask = true == index
    return float(np.mean(pred[mask] == index)) if mask.any() else None


def check_parity(keras_model: Any, bundle_dir: Any, crops: np.ndarray, true_labels: list[str],
                 batch_size: int = 64, sources: list[str] | None = None,
                 float_probs: np.ndarray | None = None) -> dict[str, Any]:
    """Float Keras vs the bundle through the edge's own classifier, on held-back uint8 crops.

    ``sources`` (the data folder of each crop) adds agreement per source: near-ties, where int8
    rounding can flip the answer, are far more common on real photos than on aligned faces.
    ``float_probs``: the Keras model's answers when already known (benchmarks compare many bundles).
    """
    bundle = load_bundle(bundle_dir)
    classifier = TFLiteClassifier(bundle, num_threads=2)
    labels = list(bundle.labels)
    if float_probs is None:
        float_probs = float_answers(keras_model, crops, batch_size)
    quant_probs = np.concatenate([classifier.scores(np.asarray(crops[i:i + 32]))
                                  for i in range(0, len(crops), 32)])
    return _compare(labels, true_labels, float_probs, quant_probs, sources)


def float_answers(keras_model: Any, crops: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The float Keras model's probabilities for uint8 crops."""
    return np.concatenate([
        keras_model.predict_on_batch(scale_pixels(np.asarray(crops[i:i + batch_size])))
        for i in range(0, len(crops), batch_size)])


def _compare(labels: list[str], true_labels: list[str], float_probs: np.ndarray,
             quant_probs: np.ndarray, sources: list[str] | None) -> dict[str, Any]:
    true = np.array([labels.index(label) for label in true_labels])
    float_pred, quant_pred = float_probs.argmax(1), quant_probs.argmax(1)
    per_class = {}
    for i, label in enumerate(labels):
        f, q = _recall(true, float_pred, i), _recall(true, quant_pred, i)
        if f is not None:
            per_class[label] = {"float_recall": round(f, 4), "quantized_recall": round(q, 4),
                                "delta": round(q - f, 4), "n": int((true == i).sum())}
    float_acc, quant_acc = float(np.mean(float_pred == true)), float(np.mean(quant_pred == true))
    result = {
        "n": len(true),
        "agreement": round(float(np.mean(float_pred == quant_pred)), 4),
        "float_accuracy": round(float_acc, 4),
        "quantized_accuracy": round(quant_acc, 4),
        "accuracy_delta": round(quant_acc - float_acc, 4),
        "max_probability_difference": round(float(np.abs(float_probs - quant_probs).max()), 4),
        "per_class": per_class,
    }
    if sources is not None:
        names = np.array(sources)
        result["per_source"] = {
            source: {"n": int((names == source).sum()),
                     "agreement": round(float(np.mean((float_pred == quant_pred)[names == source])), 4),
                     "float_accuracy": round(float(np.mean((float_pred == true)[names == source])), 4),
                     "quantized_accuracy": round(float(np.mean((quant_pred == true)[names == source])), 4)}
            for source in sorted(set(sources))}
    return result


def format_parity(result: dict[str, Any]) -> str:
    lines = [f"parity on {result['n']} held-back crops: agreement {result['agreement']:.4f}, "
             f"accuracy float {result['float_accuracy']:.4f} → quantized "
             f"{result['quantized_accuracy']:.4f} (Δ {result['accuracy_delta']:+.4f}), "
             f"max |Δp| {result['max_probability_difference']:.3f}",
             f"  {'class':20s} {'float':>7s} {'quant':>7s} {'delta':>7s} {'n':>6s}"]
    for label, row in result["per_class"].items():
        lines.append(f"  {label:20s} {row['float_recall']:7.3f} {row['quantized_recall']:7.3f} "
                     f"{row['delta']:+7.3f} {row['n']:6d}")
    for source, row in result.get("per_source", {}).items():
        lines.append(f"  {source}: agreement {row['agreement']:.4f} on {row['n']} crops, accuracy float "
                     f"{row['float_accuracy']:.4f} → quantized {row['quantized_accuracy']:.4f}")
    return "\n".join(lines)


def enforce(result: dict[str, Any], min_agreement: float, max_accuracy_drop: float) -> None:
    """Raise ModelError when the quantized model drifted past the config's thresholds."""
    if result["agreement"] < min_agreement:
        raise ModelError(f"parity: top-1 agreement {result['agreement']:.4f} is below [convert] "
                         f"min_agreement = {min_agreement}; add representative_samples or keep float32")
    if -result["accuracy_delta"] > max_accuracy_drop:
        raise ModelError(f"parity: accuracy dropped {-result['accuracy_delta']:.4f} (more than [convert] "
                         f"max_accuracy_drop = {max_accuracy_drop}); add representative_samples "
                         f"or keep float32")
