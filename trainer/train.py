"""maskipy-train's pipeline: samples → grouped split → edge crops → cached features → head → report."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections import Counter
from dataclasses import dataclass
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
from .model import assemble, build_cut_extractor, build_feature_extractor, build_head, build_top

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Where the model went, its test metrics and the wall time of each stage."""

    model_path: Path
    metadata: dict[str, Any]
    timings: dict[str, float]


@dataclass
class TrainingInput:
    """Crops the model learns from, with how many augmented views of each to add."""

    name: str
    crops: np.ndarray
    labels: list[str]
    views: int
    seed: int
    cache_tag: str
    first_view: int = 0  # 1: augmented views only (the clean crops are already in another input)

    @property
    def copies(self) -> int:
        return self.views + 1 - self.first_view


def crop_spec(config: TrainConfig) -> CropSpec:
    """The crop contract this training run uses (and writes into the model's metadata)."""
    return CropSpec(margin=config.margin, size=config.input_size)


def _split_crops(crop_set: CropSet, split: dict[str, list]) -> dict[str, CropSet]:
    side = {s.group: name for name, items in split.items() for s in items}
    names = np.array([side.get(g, "train") for g in crop_set.groups])
    return {name: crop_set.select(names == name) for name in ("train", "val", "test")}


def prepare_crops(config: TrainConfig, detector: DetectorConfig
                  ) -> tuple[CropSet, dict[str, CropSet], str]:
    """All crops (cached), split by identity; the converters reuse it for calibration and parity.

    The pixels are in the parts; the whole set comes back without them (labels and provenance)."""
    samples = load_samples(config)
    split = grouped_split(samples, config)
    spec = crop_spec(config)
    crop_set = build_crops(samples, detector, spec, config.cache_dir, config.mine_negatives,
                           detect_precropped=config.detect_precropped)
    parts = _split_crops(crop_set, split)
    # The parts hold copies of every pixel; keeping the whole set's too would cost another 0.9 GB
    # through training (160 px crops of the default recipe).
    return crop_set.without_pixels(), parts, cache_key(samples, detector, spec, config.mine_negatives,
                                                       config.detect_precropped)


def drawn_masks(train_part: CropSet, config: TrainConfig, detector: DetectorConfig
                ) -> tuple[np.ndarray, list[str]]:
    """Masks drawn onto the training split's unmasked faces (never validation or test faces)."""
    from maskipy.edge.detectors import build_detector

    from .synth import synthesize

    unmasked = np.flatnonzero(np.array(train_part.labels) == "unmasked")
    # A strict frontal cascade: masks are only drawn where the face geometry is reliable.
    strict = build_detector(dataclasses.replace(
        detector, type="haar", cascades=("frontalface_default",), min_neighbors=4, min_face=24,
        detect_width=0, eye_cascades=()))
    return synthesize(train_part.crops[unmasked], strict, config.seed)


def training_inputs(parts: dict[str, CropSet], config: TrainConfig, detector: DetectorConfig
                    ) -> list[TrainingInput]:
    inputs = [TrainingInput("train", parts["train"].crops, parts["train"].labels, config.views,
                            config.seed * 1000, "train")]
    if config.synth_masks:
        crops, labels = drawn_masks(parts["train"], config, detector)
        inputs.append(TrainingInput("drawn-masks", crops, labels, config.synth_views,
                                    config.seed * 1000 + 500, "synth"))
    train = parts["train"]
    for n, (key, views) in enumerate(pairs(config.oversample).items()):
        source, label = key.split("/", 1)
        keep = np.array([s == source and lab == label for s, lab in zip(train.sources, train.labels,
                                                                       strict=True)])
        chosen = train.select(keep)
        inputs.append(TrainingInput(f"more {key}", chosen.crops, chosen.labels, int(views),
                                    config.seed * 1000 + 700 + 50 * n, f"over-{source}-{label}",
                                    first_view=1))
    return inputs


def _features(extractor: Any, inputs: list[TrainingInput], parts: dict[str, CropSet],
              config: TrainConfig, key: str) -> dict[str, np.ndarray]:
    """train (every input, clean and augmented views), val and test features, cached."""
    train = []
    for item in inputs:
        for view in range(item.first_view, item.views + 1):
            seed = None if view == 0 else item.seed + view - 1
            desc = f"features {item.name} ({'clean' if view == 0 else f'view {view}/{item.views}'})"
            train.append(cached_features(extractor, item.crops, config.cache_dir,
                                         f"{key}|{item.cache_tag}", desc, seed))
    out = {"train": np.concatenate(train)}
    for name in ("val", "test"):
        out[name] = cached_features(extractor, parts[name].crops, config.cache_dir, key + f"|{name}",
                                    f"features {name}")
    return out


def _targets(inputs: list[TrainingInput], parts: dict[str, CropSet], labels: tuple[str, ...]
             ) -> dict[str, np.ndarray]:
    index = {label: i for i, label in enumerate(labels)}
    train = [np.tile([index[label] for label in item.labels], item.copies) for item in inputs]
    out = {"train": np.concatenate(train).astype(np.int64)}
    for name in ("val", "test"):
        out[name] = np.array([index[label] for label in parts[name].labels], dtype=np.int64)
    return out


def _fit(model: Any, features: dict[str, np.ndarray], targets: dict[str, np.ndarray],
         config: TrainConfig, epochs: int, learning_rate: float, batch_size: int) -> dict[str, list]:
    """Adam, sparse cross-entropy, class weights, early stopping on validation loss."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    has_val = len(targets["val"]) > 0
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss" if has_val else "loss",
                                               patience=6, restore_best_weights=True)]
    weights = {name: float(value) for name, value in pairs(config.label_weights).items()}
    history = model.fit(
        features["train"], targets["train"], epochs=epochs, batch_size=batch_size,
        validation_data=(features["val"], targets["val"]) if has_val else None,
        class_weight={i: weights.get(label, 1.0) for i, label in enumerate(config.labels)},
        callbacks=callbacks, verbose=2, shuffle=True)
    return {k: [round(float(v), 5) for v in vals] for k, vals in history.history.items()}


def _evaluate(model: Any, features: np.ndarray, crop_set: CropSet, labels: tuple[str, ...]) -> dict:
    """Test metrics overall and per source folder (synthetic and real data behave differently)."""
    if not len(features):
        return {}
    pred = [labels[i] for i in np.argmax(model.predict(features, verbose=0), axis=1)]
    out = {"all": report.metrics(crop_set.labels, pred, list(labels))}
    for source in sorted(set(crop_set.sources)):
        idx = [i for i, s in enumerate(crop_set.sources) if s == source]
        out[source] = report.metrics([crop_set.labels[i] for i in idx], [pred[i] for i in idx],
                                     list(labels))
    return out


def _without_pixels(parts: dict[str, CropSet], inputs: list[TrainingInput]
                    ) -> tuple[dict[str, CropSet], list[TrainingInput]]:
    """The splits and training inputs with their pixel arrays released (labels and counts kept)."""
    empty = parts["train"].without_pixels().crops
    return ({name: part.without_pixels() for name, part in parts.items()},
            [dataclasses.replace(item, crops=empty) for item in inputs])


def _timed(timings: dict[str, float], name: str, start: float) -> None:
    timings[name] = round(time.perf_counter() - start, 1)


def train(config: TrainConfig, detector: DetectorConfig) -> TrainResult:
    """Run the whole pipeline and write model.keras, metadata.json and the report."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    crop_set, parts, crops_key = prepare_crops(config, detector)
    inputs = training_inputs(parts, config, detector)
    _timed(timings, "detect_and_crop_s", start)

    start = time.perf_counter()
    extractor = build_feature_extractor(config.input_size, config.weights, config.alpha)
    key = f"{crops_key}|{config.weights}|{config.alpha}"
    features = _features(extractor, inputs, parts, config, key)
    targets = _targets(inputs, parts, config.labels)
    _timed(timings, "features_s", start)

    start = time.perf_counter()
    head = build_head(features["train"].shape[1], len(config.labels), config.dropout, config.seed)
    history = _fit(head, features, targets, config, config.epochs, config.learning_rate,
                   config.batch_size)
    test = _evaluate(head, features["test"], parts["test"], config.labels)
    _timed(timings, "head_s", start)
    if config.finetune_epochs:
        start = time.perf_counter()
        cut = build_cut_extractor(extractor)
        top = build_top(extractor, head)
        cut_features = _features(cut, inputs, parts, config, key + "|cut")
        # Every crop is features now: letting the pixels go before fitting keeps the peak under 4 GB
        # (an 8 GB laptop trains the default model).
        parts, inputs = _without_pixels(parts, inputs)
        history = {"head": history, "finetune": _fit(
            top, cut_features, targets, config, config.finetune_epochs,
            config.finetune_learning_rate, min(64, config.batch_size))}
        test = _evaluate(top, cut_features["test"], parts["test"], config.labels)
        _timed(timings, "finetune_s", start)
    model = assemble(extractor, head)
    meta = _metadata(config, detector, parts, crop_set, inputs, history, test, timings)
    return TrainResult(_save(model, meta, history, test, config.output_dir), meta, timings)


def _metadata(config: TrainConfig, detector: DetectorConfig, parts: dict[str, CropSet],
              crop_set: CropSet, inputs: list[TrainingInput], history: dict, test: dict,
              timings: dict) -> dict[str, Any]:
    import keras

    how = {name: dict(Counter(p.how)) for name, p in parts.items()}
    return {
        "labels": list(config.labels),
        "input_size": config.input_size,
        "preprocess": {"crop": crop_spec(config).to_dict(), "scaling": "mobilenet_v2: pixels / 127.5 - 1"},
        "detector": {k: list(v) if isinstance(v, tuple) else v
                     for k, v in dataclasses.asdict(detector).items()},
        "backbone": {"name": "MobileNetV2", "alpha": config.alpha, "weights": config.weights,
                     "trained": "block_16 + Conv_1" if config.finetune_epochs else "frozen"},
        "data": {"data_dir": str(config.data_dir), "sources": list(config.sources),
                 "splits": {n: dict(sorted(Counter(p.labels).items())) for n, p in parts.items()},
                 "crops_by_method": how, "fallback_rate": fallback_rates(crop_set),
                 "drawn_masks": {i.name: dict(Counter(i.labels)) for i in inputs if i.name != "train"},
                 "skipped_images": len(crop_set.skipped), "skipped_examples": crop_set.skipped[:5]},
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
    report.plot_history(history.get("finetune", history), output_dir / "curves.png")
    for name, result in test.items():
        report.plot_confusion(result, output_dir / f"confusion-{name}.png", f"test split: {name}")
        print(report.format_metrics(f"test [{name}]", result))
    return model_path
