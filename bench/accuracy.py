"""Accuracy of a bundle through the edge path (int8, edge crop) on the held-out splits and real sets.

    python bench/accuracy.py [--model edge/models/default] [--config converters/default-model.ini]
        [--edge-config edge/thorough-detector.ini]

Rows: the identity-grouped test split of faces/ (synthetic MaskedFace-Net + LFW), the grouped test
split of realworld-photos/ (real photos, three classes), and realworld-2class/ (real web photos, never
trained on; properly or improperly masked counts as with_mask), as crops and with the detector.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import REPO, bench_main, provenance, repo_relative

from maskipy.edge.bundle import DEFAULT_BUNDLE
from maskipy.edge.config import load_edge_config
from maskipy.trainer.config import load_train_config
from maskipy.trainer.data import grouped_split, load_samples
from maskipy.trainer.evaluate import Evaluator, evaluate, list_images, parse_label_map

TWO_CLASS_MAP = ["with_mask=properly_masked,improperly_masked", "without_mask=unmasked"]


def split_images(config_path: Path, source: str) -> list[tuple[Path, str]]:
    """(image, label) of the grouped test split of one source, exactly as the trainer split it."""
    import dataclasses

    config, _ = load_train_config(config_path)
    config = dataclasses.replace(config, sources=(source,), train_only_sources=(),
                                 max_per_source_label=10**9, limit=0)
    return [(s.path, s.label) for s in grouped_split(load_samples(config), config)["test"]]


def training_crops_row(evaluator: Evaluator, config_path: Path, source: str) -> dict:
    """The trainer's own test-split crops of one source (its detector, fallback box and crop), through
    the bundle's int8 classifier: the number the trainer's bars are stated in."""
    import numpy as np

    from maskipy.trainer.report import metrics
    from maskipy.trainer.train import prepare_crops

    config, detector = load_train_config(config_path)
    test = prepare_crops(config, detector)[1]["test"]
    keep = [i for i, (s, how) in enumerate(zip(test.sources, test.how, strict=True))
            if s == source and how != "mined"]
    labels = evaluator.bundle.labels
    classifier = evaluator.classifier
    pred = [labels[int(classifier.choose(classifier.classify(np.asarray(test.crops[i])))[0])] for i in keep]
    true = [test.labels[i] for i in keep]
    return metrics(true, pred, sorted(set(true)) + sorted(set(pred) - set(true)))


ROWS = ("faces_test (training crops)", "faces_test (detected)", "realworld-photos_test (crops)",
        "realworld-photos_test (detected)", "realworld-2class (crops)", "realworld-2class (detected)")


def run(model: str, config_path: Path, two_class_limit: int = 0, edge_config: Path | None = None,
        only: tuple[str, ...] = ROWS) -> dict:
    record = provenance(model, "given" if model != str(DEFAULT_BUNDLE) else "default")
    crops = Evaluator(model, None, crop_margin=0.2)
    detect = Evaluator(model, load_edge_config(edge_config).detector, crop_margin=0.2)
    train_config, _ = load_train_config(config_path)
    two_class = list_images(train_config.data_dir / "realworld-2class")
    if two_class_limit:
        two_class = two_class[:: max(1, len(two_class) // two_class_limit)]
    faces_test = split_images(config_path, "faces")
    real_test = split_images(config_path, "realworld-photos")
    measures = {
        "faces_test (training crops)": lambda: training_crops_row(crops, config_path, "faces"),
        "faces_test (detected)": lambda: evaluate(detect, faces_test, {}),
        "realworld-photos_test (crops)": lambda: evaluate(crops, real_test, {}),
        # The same photos framed by the detector, as the gate frames them (no face found: an error).
        "realworld-photos_test (detected)": lambda: evaluate(detect, real_test, {}),
        "realworld-2class (crops)": lambda: evaluate(crops, two_class, parse_label_map(TWO_CLASS_MAP)),
        "realworld-2class (detected)": lambda: evaluate(detect, two_class, parse_label_map(TWO_CLASS_MAP)),
    }
    rows = {name: measure() for name, measure in measures.items() if name in only}
    return {"model": repo_relative(Path(model).resolve()),
            "edge_config": repo_relative(edge_config) if edge_config else "defaults", "rows": rows,
            "provenance": record}


def table(result: dict) -> str:
    lines = [f"{'set':32s} {'n':>5s} {'acc':>6s} {'macroF1':>8s}  recall per class"]
    for name, row in result["rows"].items():
        recall = ", ".join(f"{k} {v:.3f}" for k, v in row["recall"].items())
        found = f"  (face found in {row['detection']['image_rate']:.3f})" if "detection" in row else ""
        alarms = f"  false alarms {row['false_alarm_rate']:.3f}" if "false_alarm_rate" in row else ""
        lines.append(f"{name:32s} {row['n']:5d} {row['accuracy']:6.3f} {row['macro_f1']:8.3f}  "
                     f"{recall}{found}{alarms}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=str(DEFAULT_BUNDLE))
    parser.add_argument("--config", type=Path, default=REPO / "converters" / "default-model.ini")
    parser.add_argument("--two-class-limit", type=int, default=0, help="subsample realworld-2class")
    parser.add_argument("--edge-config", type=Path, default=None,
                        help="edge INI whose [detector] the detected rows use (default: the defaults)")
    parser.add_argument("--rows", type=lambda text: tuple(r.strip() for r in text.split(",")), default=ROWS,
                        help=f"comma-separated rows to measure (default: all: {', '.join(ROWS)})")


def main(argv: list[str] | None = None) -> int:
    return bench_main(__file__, __doc__, add_arguments,
                      lambda a: run(a.model, a.config, a.two_class_limit, a.edge_config, a.rows),
                      lambda r: print(table(r)), argv)


if __name__ == "__main__":
    sys.exit(main())
