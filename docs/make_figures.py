"""Draw the README's figures: the edge pipeline, and the default model's confusion matrices.

    python docs/make_figures.py   (reads bench/results/accuracy.json, writes docs/*.png)
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

DOCS = Path(__file__).resolve().parent
RESULTS = DOCS.parent / "bench" / "results" / "accuracy.json"

STAGES = [  # (step, what it does, where it lives in edge/)
    ("camera", "picamera2 / USB /\nvideo / photos", "sources/"),
    ("detect", "YuNet face detector\n320 px long side", "detectors/"),
    ("crop", "box + 20 %\n160 × 160 RGB", "pipeline.py"),
    ("classify", "int8 MobileNetV2\n+ calibrated decision", "classifier/"),
    ("track", "IoU tracks, vote\nof last 5 frames", "tracking.py"),
    ("outputs", "LED · buzzer · counts\nMQTT · status page", "outputs/, web/"),
]


def pipeline(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(11, 2.0))
    ax.set_xlim(0, len(STAGES) * 2)
    ax.set_ylim(0, 2)
    ax.axis("off")
    for i, (title, text, where) in enumerate(STAGES):
        x = i * 2 + 0.1
        ax.add_patch(plt.Rectangle((x, 0.25), 1.6, 1.5, facecolor="#e8f1fa", edgecolor="#2a6bb0"))
        ax.text(x + 0.8, 1.5, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + 0.8, 0.95, text, ha="center", va="center", fontsize=8.5)
        ax.text(x + 0.8, 0.45, f"edge/{where}", ha="center", va="center", fontsize=8, family="monospace",
                color="#555555")
        if i < len(STAGES) - 1:
            ax.annotate("", xy=(x + 1.95, 1.0), xytext=(x + 1.65, 1.0),
                        arrowprops={"arrowstyle": "->", "color": "#2a6bb0"})
    ax.text(len(STAGES), 0.05, "not_face answers drop the box; each person is counted once when "
            "their vote settles", ha="center", fontsize=8.5, style="italic")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confusions(path: Path) -> None:
    rows = json.loads(RESULTS.read_text())["rows"]
    names = [n for n in rows if "2class (detected)" not in n]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4))
    for ax, name in zip(axes, names, strict=True):
        row = rows[name]
        labels = [label for label in row["labels"]]
        matrix = np.array(row["confusion"])
        keep = [i for i, label in enumerate(labels) if matrix[i].sum() or matrix[:, i].sum()]
        matrix = matrix[np.ix_(keep, keep)]
        labels = [labels[i].replace("_", " ") for i in keep]
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if value > matrix.max() / 2 else "black")
        ax.set_title(f"{name}\nacc {row['accuracy']:.3f}, macro-F1 {row['macro_f1']:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    pipeline(DOCS / "pipeline.png")
    if RESULTS.is_file():
        confusions(DOCS / "accuracy.png")
