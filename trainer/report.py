"""Metrics, confusion matrices and learning curves, as JSON, PNG and printed tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def metrics(true: list[str], pred: list[str], labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the labels present, per-class precision/recall/F1/support, confusion."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    present = [label for label in labels if label in set(true)]
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=present, zero_division=0)
    return {
        "n": len(true),
        "accuracy": round(float(accuracy_score(true, pred)), 4) if true else 0.0,
        "macro_f1": round(float(np.mean(f1)), 4) if present else 0.0,
        "labels": labels,
        "per_class": {label: {"precision": round(float(p), 4), "recall": round(float(r), 4),
                              "f1": round(float(f), 4), "support": int(s)}
                      for label, p, r, f, s in zip(present, precision, recall, f1, support, strict=True)},
        "recall": {label: round(float(r), 4) for label, r in zip(present, recall, strict=True)},
        "confusion": confusion_matrix(true, pred, labels=labels).tolist(),
    }


# Face-width bins (px) of the false-alarm breakdown: small, blurry faces are most false alarms.
SIZE_BINS = ((0, 48, "<48"), (48, 80, "48-80"), (80, 130, "80-130"), (130, 1 << 30, ">=130"))
PROPER, IMPROPER = "properly_masked", "improperly_masked"


def false_alarms(true: list[str], chosen: list[str | None], widths: list[int]) -> dict[str, Any]:
    """The false-alarm rate (properly masked faces called improperly masked, the buzz at someone who
    wears the mask right) overall and by face width; empty where the data has no such faces.

    ``chosen`` are the model's own labels (before any --label-map), None where no face was found;
    those faces are left out of the rate and counted as ``properly_masked_not_found``.
    """
    everyone = [i for i, label in enumerate(true) if label == PROPER]
    # A face the detector missed raised no alarm and was not judged: counted apart, not in the rate.
    proper = [i for i in everyone if chosen[i] is not None]
    if not proper:
        return {}
    by_size: dict[str, dict[str, Any]] = {}
    for low, high, name in SIZE_BINS:
        members = [i for i in proper if low <= widths[i] < high]
        alarms = sum(chosen[i] == IMPROPER for i in members)
        by_size[name] = {"properly_masked": len(members), "false_alarms": alarms,
                         "rate": round(alarms / len(members), 4) if members else None}
    alarms = sum(chosen[i] == IMPROPER for i in proper)
    return {"false_alarm_rate": round(alarms / len(proper), 4), "false_alarms": alarms,
            "by_size": by_size, "properly_masked_not_found": len(everyone) - len(proper)}


def calibration(true: list[str], answers: list[Any], labels: tuple[str, ...]) -> dict[str, Any]:
    """Expected calibration error of the stated confidence, over faces whose class the model has."""
    from maskipy.edge.classifier.decision import expected_calibration_error

    rows = [(labels.index(t), a.probs) for t, a in zip(true, answers, strict=True)
            if a.probs is not None and t in labels]
    if not rows:
        return {}
    index, probs = np.array([r[0] for r in rows]), np.stack([r[1] for r in rows])
    return {"ece": round(expected_calibration_error(probs, index), 4)}


def format_false_alarms(result: dict[str, Any]) -> str:
    """One line: the false-alarm rate, then per face-width bin."""
    bins = ", ".join(f"{name} px {row['false_alarms']}/{row['properly_masked']}"
                     for name, row in result["by_size"].items())
    ece = f"; calibration error (ECE) {result['ece']:.3f}" if "ece" in result else ""
    return (f"false alarms (properly masked called improperly masked): {result['false_alarm_rate']:.3f} "
            f"({result['false_alarms']}); by face width: {bins}{ece}")


def format_metrics(title: str, result: dict[str, Any]) -> str:
    """A printable classification report and confusion matrix."""
    lines = [f"{title}: n={result['n']} accuracy={result['accuracy']:.4f} "
             f"macro-F1={result['macro_f1']:.4f}",
             f"  {'class':20s} {'precision':>9s} {'recall':>7s} {'f1':>6s} {'n':>6s}"]
    for label, row in result["per_class"].items():
        lines.append(f"  {label:20s} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1']:6.3f} "
                     f"{row['support']:6d}")
    labels = result["labels"]
    lines.append("  confusion (rows true, columns predicted): " + " ".join(label[:8] for label in labels))
    for label, row in zip(labels, result["confusion"], strict=True):
        lines.append(f"  {label:20s} " + " ".join(f"{v:8d}" for v in row))
    return "\n".join(lines)


def plot_confusion(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(result["confusion"])
    labels = result["labels"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        ax.plot(history.get(key, []), label="train")
        ax.plot(history.get(f"val_{key}", []), label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
