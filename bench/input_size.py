"""Classifier bundles side by side at every operating point: false alarms against improper recall.

A bundle's decision rule picks one point on its trade-off (the improperly masked weight fitted on
the validation split), so two bundles' headline numbers can sit at different false-alarm rates and
say little about which model is better. This sweeps that weight for each bundle on the same real
photos, held-out identities of ``realworld-photos`` (the recipe's grouped test split), cut as crops
(box + 20 %) and as the default detector frames them, and reports:

- the improperly masked recall each bundle reaches at a false-alarm rate of at most 1.5 %, 2.6 % and
  4.4 % (a false alarm: a properly masked face given an alert class);
- the point its own decision rule chooses;
- MACs per face and the Pi 4 estimate (``pi_estimate.classifier_pi4_ms``), this machine's ms a call;
- a plot of the curves (``bench/results/input_size.png``).

``--flip`` adds a row per bundle with test-time flip: each face's probabilities averaged with its
mirror image's (twice the classifier's time, as its cost columns say).

    python bench/input_size.py --model 160=edge/models/default --model 224=runs/size-224-bundle
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import split_images
from bench_common import REPO, RESULTS, bench_main, format_table, provenance, repo_relative
from model_macs import invoke_ms, model_macs
from pi_estimate import classifier_pi4_ms

from maskipy.edge.config import load_edge_config
from maskipy.trainer.evaluate import Evaluator

FALSE_ALARM_BUDGETS = (0.015, 0.026, 0.044)
WEIGHTS = np.geomspace(0.02, 3.0, 80)
ALERTS = ("improperly_masked", "unmasked")


class FlipAveraged:
    """A classifier whose ``classify`` averages each crop's calibrated probabilities with its mirror
    image's (test-time flip); everything else is the wrapped classifier's."""

    def __init__(self, classifier: Any) -> None:
        self.inner = classifier

    def classify(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        mirrored = np.ascontiguousarray(crops[..., ::-1, :])  # width is the second-last axis
        return (self.inner.classify(crops) + self.inner.classify(mirrored)) / 2

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def scored(evaluator: Evaluator, images: list[tuple[Path, str]]) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and true label indices of the images where a face was classified."""
    labels = evaluator.bundle.labels
    probs, true = [], []
    for path, label in images:
        answer = evaluator.predict(path)
        if answer.probs is not None:
            probs.append(answer.probs)
            true.append(labels.index(label))
    return np.asarray(probs), np.asarray(true)


def operating_curve(probs: np.ndarray, true: np.ndarray, labels: list[str], weights: np.ndarray
                    ) -> dict[str, Any]:
    """(weight, false-alarm rate, improper recall) as the improperly masked weight sweeps, and the
    point the bundle's own weights choose."""
    proper, improper = labels.index("properly_masked"), labels.index("improperly_masked")
    alerts = [labels.index(name) for name in ALERTS]

    def point(vector: np.ndarray) -> tuple[float, float]:
        pred = np.argmax(probs * vector, axis=1)
        false_alarms = float(np.isin(pred[true == proper], alerts).mean())
        return round(false_alarms, 4), round(float((pred[true == improper] == improper).mean()), 4)

    curve = []
    for weight in WEIGHTS:
        vector = weights.copy()
        vector[improper] = weight
        curve.append((round(float(weight), 4), *point(vector)))
    at_budget = {}
    for budget in FALSE_ALARM_BUDGETS:
        within = [c for c in curve if c[1] <= budget]
        at_budget[str(budget)] = max(within, key=lambda c: c[2])[2] if within else None
    false_alarms, recall = point(weights)
    return {"n": int(len(true)), "n_properly_masked": int((true == proper).sum()),
            "n_improperly_masked": int((true == improper).sum()), "curve": curve,
            "improper_recall_at_false_alarms": at_budget,
            "chosen": {"weight": round(float(weights[improper]), 4), "false_alarms": false_alarms,
                       "improper_recall": recall}}


def measure(name: str, bundle: str, config: Path, flip: bool = False) -> dict[str, Any]:
    images = split_images(config, "realworld-photos")
    row: dict[str, Any] = {"bundle": repo_relative(Path(bundle).resolve()), "flip": flip}
    for mode, detector in (("crops", None), ("detected", load_edge_config(None).detector)):
        evaluator = Evaluator(bundle, detector, crop_margin=0.2)
        if flip:
            evaluator.classifier = FlipAveraged(evaluator.classifier)
        probs, true = scored(evaluator, images)
        weights = np.asarray(evaluator.classifier.decision.weights, np.float32)
        row[mode] = operating_curve(probs, true, list(evaluator.bundle.labels), weights)
        print(f"{name} {mode}: {row[mode]['n']} faces", file=sys.stderr)
    model = Path(bundle) / "model.tflite"
    info = model_macs(model)
    row["crop_size"] = evaluator.bundle.crop_spec.size
    calls = 2 if flip else 1  # test-time flip classifies every face twice
    row["cost"] = {"calls_per_face": calls, "mmacs": round(info["mmacs"] * calls, 1),
                   "pi4_ms": {threads: round(ms * calls, 1)
                              for threads, ms in classifier_pi4_ms(info).items()},
                   "x86_invoke_ms_2_threads": round(invoke_ms(model, threads=2) * calls, 2)}
    return row


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, mode in zip(axes, ("crops", "detected"), strict=True):
        for name, row in result["bundles"].items():
            curve = np.asarray(row[mode]["curve"])
            line, = axis.plot(curve[:, 1] * 100, curve[:, 2], label=f"{name} ({row['crop_size']} px)",
                              linestyle="--" if row["flip"] else "-")
            chosen = row[mode]["chosen"]
            axis.plot(chosen["false_alarms"] * 100, chosen["improper_recall"], "o", color=line.get_color())
        axis.set_title(f"realworld-photos test, {mode} (dot: the bundle's own decision)")
        axis.set_xlabel("properly masked given an alert (%)")
        axis.set_xlim(0, 10)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("improperly masked recall")
    axes[0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="NAME=BUNDLE",
                        help="a bundle to compare (repeat); NAME labels its row")
    parser.add_argument("--config", type=Path, default=REPO / "converters" / "default-model.ini",
                        help="the recipe whose grouped test split is used (the split does not depend "
                             "on the crop size)")
    parser.add_argument("--plot", type=Path, default=RESULTS / "input_size.png")
    parser.add_argument("--flip", action="store_true", help="also each bundle with test-time flip")


def run(args: argparse.Namespace) -> dict[str, Any]:
    pairs = [entry.split("=", 1) for entry in args.model]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit("input_size: error: --model takes NAME=BUNDLE, e.g. --model 160=edge/models/default")
    files = {f"classifier:{name}": Path(path) / "model.tflite" for name, path in pairs}
    record = provenance(None, files=files)
    bundles = {name: measure(name, path, args.config) for name, path in pairs}
    if args.flip:
        bundles |= {f"{name}+flip": measure(name, path, args.config, flip=True) for name, path in pairs}
    result = {"benchmark": "input_size", "false_alarm_budgets": FALSE_ALARM_BUDGETS,
              "bundles": bundles,
              "plot": repo_relative(args.plot), "provenance": record}
    plot(result, args.plot)
    return result


def print_report(result: dict[str, Any]) -> None:
    budgets = result["false_alarm_budgets"]
    headers = ["bundle", "px", "set", "n P/I", *[f"I recall @FA<={b:.1%}" for b in budgets],
               "own rule: FA / I recall", "M MACs", "Pi4 ms 2t/4t", "x86 ms"]
    rows = []
    for name, row in result["bundles"].items():
        for mode in ("crops", "detected"):
            r = row[mode]
            at = r["improper_recall_at_false_alarms"]
            rows.append([name, row["crop_size"], mode, f"{r['n_properly_masked']}/{r['n_improperly_masked']}",
                         *[at[str(b)] if at[str(b)] is not None else "-" for b in budgets],
                         f"{r['chosen']['false_alarms']:.3f} / {r['chosen']['improper_recall']:.3f}",
                         row["cost"]["mmacs"], f"{row['cost']['pi4_ms'][2]}/{row['cost']['pi4_ms'][4]}",
                         row["cost"]["x86_invoke_ms_2_threads"]])
    print(format_table(headers, rows))
    print(f"\nplot: {result['plot']}")


def main(argv: list[str] | None = None) -> int:
    return bench_main(__file__, __doc__, add_arguments, run, print_report, argv)


if __name__ == "__main__":
    sys.exit(main())
