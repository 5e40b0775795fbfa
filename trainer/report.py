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
