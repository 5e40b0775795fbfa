"""maskipy-train's pipeline: samples → grouped split → edge crops → cached features → head → report."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from maskipy.edge.config import DetectorConfig
from maskipy.edge.preprocess import CropSpec

from . import report
from .config import TrainConfig, pairs
from .crops import CropSet, build_crops, cache_key, fallback_rates
from .data import grouped_split, load_samples
from .features import cached_features
from .model import assemble, build_feature_extractor, build_head

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """Where the model went, its test metrics and the wall time of each stage."""

    model_path: Path
    metadata: dict[str, Any]
    timings: dict[str, float]


def _split_crops(crop_set: CropSet, split: dict[str, list]) -> dict[str, CropSet]:
    side = {s.group: name for name, items in split.items() for s in items}
    names = np.array([side.get(g, "train") for g in crop_set.groups])
    return {name: crop_set.select(names == name) for name in ("train", "val", "test")}


def _class_weights(config: TrainConfig) -> dict[int, float]:
    weights = {name: float(value) for name, value in pairs(config.label_weights).items()}
    return {i: weights.get(label, 1.0) for i, label in enumerate(config.labels)}


def _train_features(extractor: Any, train: CropSet, config: TrainConfig, key: str) -> np.ndarray:
    views = [cached_features(extractor, train.crops, config.cache_dir, key, "features train (clean)")]
    for view in range(config.views):
        views.append(cached_features(extractor, train.crops, config.cache_dir, key,
                                     f"features train (view {view + 1}/{config.views})",
                                     view_seed=config.seed * 1000 + view))
    return np.concatenate(views)


def _fit_head(features: dict[str, np.ndarray], targets: dict[str, np.ndarray],
              config: TrainConfig) -> tuple[Any, dict[str, list[float]]]:
    import keras

    head = build_head(features["train"].shape[1], len(config.labels), config.dropout, config.seed)
    head.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    has_val = len(targets["val"]) > 0
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss" if has_val else "loss",
                                               patience=6, restore_best_weights=True)]
    history = head.fit(
        features["train"], targets["train"], epochs=config.epochs, batch_size=config.batch_size,
        validation_data=(features["val"], targets["val"]) if has_val else None,
        class_weight=_class_weights(config), callbacks=callbacks, verbose=2, shuffle=True)
    return head, {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()}


def _evaluate(head: Any, features: np.ndarray, crop_set: CropSet, labels: tuple[str, ...]) -> dict:
    """Test metrics overall and per source folder (synthetic and real data behave differently)."""
    if not len(features):
        return {}
    pred = [labels[i] for i in np.argmax(head.predict(features, verbose=0), axis=1)]
    out = {"all": report.metrics(crop_set.labels, pred, list(labels))}
    for source in sorted(set(crop_set.sources)):
        idx = [i for i, s in enumerate(crop_set.sources) if s == source]
        out[source] = report.metrics([crop_set.labels[i] for i in idx], [pred[i] for i in idx],
                                     list(labels))
    return out


def train(config: TrainConfig, detector: DetectorConfig) -> TrainResult:
    """Run the whole pipeline and write model.keras, metadata.json and the report."""
    timings: dict[str, float] = {}
    spec = CropSpec(margin=config.margin, size=config.input_size)
    start = time.perf_counter()
    samples = load_samples(config)
    split = grouped_split(samples, config)
    crop_set = build_crops(samples, detector, spec, config.cache_dir, config.mine_negatives)
    parts = _split_crops(crop_set, split)
    timings["detect_and_crop_s"] = round(time.perf_counter() - start, 1)

    start = time.perf_counter()
    extractor = build_feature_extractor(config.input_size, config.weights, config.alpha)
    key = f"{cache_key(samples, detector, spec, config.mine_negatives)}|{config.weights}|{config.alpha}"
    features = {"train": _train_features(extractor, parts["train"], config, key + "|train")}
    for name in ("val", "test"):
        features[name] = cached_features(extractor, parts[name].crops, config.cache_dir,
                                         key + f"|{name}", f"features {name}")
    timings["features_s"] = round(time.perf_counter() - start, 1)

    index = {label: i for i, label in enumerate(config.labels)}
    targets = {name: np.array([index[label] for label in parts[name].labels], dtype=np.int64)
               for name in ("train", "val", "test")}
    targets["train"] = np.tile(targets["train"], config.views + 1)
    start = time.perf_counter()
    head, history = _fit_head(features, targets, config)
    timings["head_s"] = round(time.perf_counter() - start, 1)

    test = _evaluate(head, features["test"], parts["test"], config.labels)
    model = assemble(extractor, head)
    meta = _metadata(config, detector, spec, parts, crop_set, history, test, timings)
    return TrainResult(_save(model, meta, history, test, config.output_dir), meta, timings)


def _metadata(config: TrainConfig, detector: DetectorConfig, spec: CropSpec,
              parts: dict[str, CropSet], crop_set: CropSet, history: dict, test: dict,
              timings: dict) -> dict[str, Any]:
    import keras

    how = {name: dict(zip(*np.unique(p.how, return_counts=True), strict=True))
           for name, p in parts.items()}
    return {
        "labels": list(config.labels),
        "input_size": config.input_size,
        "preprocess": {"crop": spec.to_dict(), "scaling": "mobilenet_v2: pixels / 127.5 - 1"},
        "detector": {k: list(v) if isinstance(v, tuple) else v
                     for k, v in dataclasses.asdict(detector).items()},
        "backbone": {"name": "MobileNetV2", "alpha": config.alpha, "weights": config.weights,
                     "trainable": False},
        "data": {"data_dir": str(config.data_dir), "sources": list(config.sources),
                 "splits": {n: dict(sorted(Counter(p.labels).items())) for n, p in parts.items()},
                 "crops_by_method": {n: {k: int(v) for k, v in h.items()} for n, h in how.items()},
                 "fallback_rate": fallback_rates(crop_set), "skipped_images": len(crop_set.skipped),
                 "skipped_examples": crop_set.skipped[:5]},
        "train": {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                  for k, v in dataclasses.asdict(config).items()},
        "history": history, "test": test, "timings": timings,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"keras": keras.__version__},
    }


def _save(model: Any, meta: dict, history: dict, test: dict, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    model_path = output_dir / "model.keras"
    model.save(model_path)
    report.write_json(meta, output_dir / "metadata.json")
    report.plot_history(history, output_dir / "curves.png")
    for name, result in test.items():
        report.plot_confusion(result, output_dir / f"confusion-{name}.png", f"test split: {name}")
        print(report.format_metrics(f"test [{name}]", result))
    return model_path
