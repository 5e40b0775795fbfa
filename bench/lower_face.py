"""Does a second, closer look at the nose and mouth separate improper wearing? (issue #18)

Improper wearing is the nose (or the chin) outside the mask, a few pixels of a 160 px face crop. This
asks, before anyone builds a two-input model, whether a second crop around the nose and mouth carries
evidence the whole face does not. On the real photos of ``realworld-photos`` (the recipe's grouped
split: a linear probe trains on the train identities, picks its regularisation on the validation
ones and is measured on the test ones), frozen ImageNet MobileNetV2 features of:

- ``face``: the whole crop (what the classifier sees today);
- ``face+mirror``: the whole crop and its mirror image (a control: as many features, no new view);
- ``lower``: the lower face alone, a square of 0.6 face widths around the nose and mouth, resized to
  the same input size (so about 1.7x the pixels per face width), placed by geometry (no landmarks,
  the path Haar would take);
- ``face+lower``: both, by geometry;
- ``face+lower(landmarks)``: both, the square centred between YuNet's nose tip and mouth corners
  found on the crop (geometry where YuNet finds nothing).

For each: how well it separates improperly from properly masked faces, the question a closer look
at the nose is for: the area under the ROC curve of p(improper) / (p(improper) + p(proper)) over
those two classes, and improperly masked recall at budgets of properly masked faces called
improperly masked, sweeping the improperly masked weight as the decision rule does; macro-F1 at
argmax over all three classes; bootstrap 95 % intervals over test faces. (A probe confuses properly
masked with unmasked more often than the shipped model does, so counting those as false alarms too
would leave no operating point inside the budgets and hide the comparison.)

A linear probe on frozen features is not the shipped model: it
measures what the features can tell apart, the same way for every variant.

    python bench/lower_face.py
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import REPO, bench_main, format_table, provenance

LABELS = ("properly_masked", "improperly_masked", "unmasked")
RECIPE = REPO / "converters" / "default-model.ini"
SOURCE = "realworld-photos"
# The crops of realworld-photos carry 20 % margin around the face box on each side (data README).
MARGIN = 0.2
LOWER_SIDE = 0.6  # the lower-face square's side, in face widths
LOWER_CENTRE = 0.62  # its centre without landmarks, in face heights from the top of the face box
BUDGETS = (0.015, 0.026, 0.044)
WEIGHTS = np.geomspace(0.05, 20.0, 120)
VARIANTS = ("face", "face+mirror", "lower", "face+lower", "face+lower(landmarks)")


def split_samples(recipe: Path) -> dict[str, list[tuple[Path, str]]]:
    """(image, label) per split of the real photos, exactly as the trainer splits them."""
    from maskipy.trainer.config import load_train_config
    from maskipy.trainer.data import grouped_split, load_samples

    config, _ = load_train_config(recipe)
    config = dataclasses.replace(config, sources=(SOURCE,), train_only_sources=(),
                                 max_per_source_label=10**9, limit=0)
    return {name: [(s.path, s.label) for s in samples]
            for name, samples in grouped_split(load_samples(config), config).items()}


def face_box(shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """The annotated face inside a crop cut with MARGIN on every side."""
    h, w = shape[:2]
    grow = 1 + 2 * MARGIN
    return w * MARGIN / grow, h * MARGIN / grow, w / grow, h / grow


def square(image: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """A ``size`` px square of ``image`` centred at (cx, cy), edges replicated where it leaves the image."""
    half = side / 2
    matrix = np.float32([[size / side, 0, -(cx - half) * size / side],
                         [0, size / side, -(cy - half) * size / side]])
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def lower_centre(image_bgr: np.ndarray, detector: Any | None) -> tuple[float, float, bool]:
    """Where the nose and mouth are: between YuNet's nose tip and mouth corners when it finds the face
    (its box overlapping the annotated one most), else by geometry; and whether landmarks placed it."""
    from maskipy.edge.geometry import iou

    x, y, w, h = face_box(image_bgr.shape)
    if detector is not None:
        found = [d for d in detector.detect(image_bgr) if d.landmarks and iou(d.box, (x, y, w, h)) >= 0.3]
        if found:
            points = max(found, key=lambda d: iou(d.box, (x, y, w, h))).landmarks
            nose, mouth = np.asarray(points[2]), (np.asarray(points[3]) + np.asarray(points[4])) / 2
            centre = (nose + mouth) / 2
            return float(centre[0]), float(centre[1]), True
    return x + w / 2, y + LOWER_CENTRE * h, False


def views(samples: list[tuple[Path, str]], size: int, detector: Any) -> dict[str, Any]:
    """RGB uint8 crops per view (face, lower by geometry, lower by landmarks) and the labels."""
    from tqdm import tqdm

    from maskipy.edge.sources.imagecheck import read_image_checked as read_image

    face, lower, landmarked, labels, placed = [], [], [], [], 0
    for path, label in tqdm(samples, desc="crops", unit="img"):
        bgr = read_image(str(path))
        _, _, w, _ = face_box(bgr.shape)
        face.append(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA))
        gx, gy, _ = lower_centre(bgr, None)
        lower.append(square(bgr, gx, gy, LOWER_SIDE * w, size))
        # YuNet wants the face at a size it was trained on: look at the crop at >= 160 px wide.
        scale = max(1.0, 160 / bgr.shape[1])
        big = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) if scale > 1 else bgr
        lx, ly, ok = lower_centre(big, detector)
        placed += ok
        landmarked.append(square(bgr, lx / scale, ly / scale, LOWER_SIDE * w, size))
        labels.append(LABELS.index(label))
    rgb = [np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in group])
           for group in (face, lower, landmarked)]
    return {"face": rgb[0], "lower": rgb[1], "landmarks": rgb[2], "labels": np.asarray(labels),
            "landmarks_placed": placed}


def design(variant: str, f: dict[str, np.ndarray]) -> np.ndarray:
    parts = {"face": ["face"], "face+mirror": ["face", "mirror"], "lower": ["lower"],
             "face+lower": ["face", "lower"], "face+lower(landmarks)": ["face", "landmarks"]}[variant]
    return np.concatenate([f[p] for p in parts], axis=1)


def operating_points(probs: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Improper recall at each budget of properly masked faces called improperly masked, sweeping the
    improperly masked weight; and ``auc``, how well p(improper) ranks improper above proper faces."""
    proper, improper = truth == 0, truth == 1
    curve = []
    for weight in WEIGHTS:
        pick = np.argmax(probs * np.array([1.0, weight, 1.0]), axis=1)
        curve.append((float(np.mean(pick[proper] == 1)), float(np.mean(pick[improper] == 1))))
    points = {f"{budget:.3f}": max((r for fa, r in curve if fa <= budget), default=0.0) for budget in BUDGETS}
    return {**points, "auc": separation_auc(probs[proper | improper], improper[proper | improper])}


def separation_auc(probs: np.ndarray, is_improper: np.ndarray) -> float:
    """ROC AUC of p(improper) / (p(improper) + p(proper)) (the Mann-Whitney statistic, ties as half)."""
    score = probs[:, 1] / np.maximum(probs[:, 0] + probs[:, 1], 1e-12)
    positive, negative = score[is_improper], score[~is_improper]
    if not len(positive) or not len(negative):
        return float("nan")
    above, tied = positive[:, None] > negative[None, :], positive[:, None] == negative[None, :]
    greater = above.sum() + 0.5 * tied.sum()
    return float(greater / (len(positive) * len(negative)))


def macro_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    scores = []
    for k in range(len(LABELS)):
        tp = np.sum((pred == k) & (truth == k))
        denominator = np.sum(pred == k) + np.sum(truth == k)
        scores.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(scores))


def probe(x: dict[str, np.ndarray], y: dict[str, np.ndarray], seed: int) -> tuple[np.ndarray, float]:
    """Test probabilities of a logistic regression trained on train, its C picked on validation."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x["train"])
    best: tuple[float, Any] | None = None
    for c in (0.001, 0.003, 0.01, 0.03):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, random_state=seed)
        model.fit(scaler.transform(x["train"]), y["train"])
        score = macro_f1(model.predict(scaler.transform(x["val"])), y["val"])
        if best is None or score > best[0]:
            best = (score, model, c)
    assert best is not None
    return best[1].predict_proba(scaler.transform(x["test"])), best[2]


def bootstrap(probs: np.ndarray, truth: np.ndarray, rounds: int, seed: int) -> dict[str, list[float]]:
    """95 % intervals of the recall at each budget and of the AUC, resampling test faces."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {**{f"{b:.3f}": [] for b in BUDGETS}, "auc": []}
    for _ in range(rounds):
        pick = rng.integers(0, len(truth), len(truth))
        for key, value in operating_points(probs[pick], truth[pick]).items():
            draws[key].append(value)
    return {key: [round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)]
            for key, v in draws.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=160,
                        help="input size of every view (the shipped model's)")
    parser.add_argument("--bootstrap", type=int, default=300, help="bootstrap rounds for the intervals")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.detectors import build_detector
    from maskipy.trainer.config import load_train_config
    from maskipy.trainer.features import extract
    from maskipy.trainer.model import build_feature_extractor

    started = time.perf_counter()
    config, _ = load_train_config(RECIPE)
    record = provenance(files={"backbone": config.weights})
    detector = build_detector(dataclasses.replace(load_edge_config(None).detector, min_face=8))
    extractor = build_feature_extractor(args.size, str(config.weights))
    splits = split_samples(RECIPE)
    x: dict[str, dict[str, np.ndarray]] = {v: {} for v in VARIANTS}
    y: dict[str, np.ndarray] = {}
    placed: dict[str, Any] = {}
    for name, samples in splits.items():
        crops = views(samples, args.size, detector)
        f = {"face": extract(extractor, crops["face"], desc=f"{name} face"),
             "mirror": extract(extractor, np.ascontiguousarray(crops["face"][:, :, ::-1]),
                               desc=f"{name} mirror"),
             "lower": extract(extractor, crops["lower"], desc=f"{name} lower"),
             "landmarks": extract(extractor, crops["landmarks"], desc=f"{name} landmarks")}
        for variant in VARIANTS:
            x[variant][name] = design(variant, f)
        y[name] = crops["labels"]
        placed[name] = {"faces": len(samples), "landmarks_placed": int(crops["landmarks_placed"])}
    rows = {}
    for variant in VARIANTS:
        probs, c = probe(x[variant], y, args.seed)
        rows[variant] = {"C": c, "macro_f1": round(macro_f1(np.argmax(probs, axis=1), y["test"]), 4),
                         "improper_recall_at_false_alarms": operating_points(probs, y["test"]),
                         "interval_95": bootstrap(probs, y["test"], args.bootstrap, args.seed)}
    return {"benchmark": "lower_face", "source": SOURCE, "recipe": "converters/default-model.ini",
            "size": args.size, "lower_side_face_widths": LOWER_SIDE,
            "lower_centre_face_heights": LOWER_CENTRE,
            "test_faces": {LABELS[k]: int(np.sum(y["test"] == k)) for k in range(len(LABELS))},
            "crops": placed, "rows": rows, "wall_s": round(time.perf_counter() - started, 1),
            "provenance": record}


def print_report(result: dict[str, Any]) -> None:
    print(f"linear probe on frozen MobileNetV2 features, {result['source']} test identities "
          f"{result['test_faces']}")
    print("AUC: improper vs properly masked; recall at a share of properly masked faces called improper")
    headers = ["view", "macro-F1", "AUC I vs P", *[f"I recall @P->I<={b:.1%}" for b in BUDGETS]]
    rows = []
    for name, row in result["rows"].items():
        points, interval = row["improper_recall_at_false_alarms"], row["interval_95"]
        rows.append([name, f"{row['macro_f1']:.3f}",
                     *[f"{points[k]:.3f} [{interval[k][0]:.2f}-{interval[k][1]:.2f}]"
                       for k in ("auc", *(f"{b:.3f}" for b in BUDGETS))]])
    print(format_table(headers, rows))


def main(argv: list[str] | None = None) -> int:
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, run, print_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
