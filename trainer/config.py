"""The trainer's [train] section of config.ini, validated with the edge's schema engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskipy.edge.config import EDGE_SCHEMA, DetectorConfig, parse_sections, read_ini, setting
from maskipy.edge.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Training data, split, backbone and head settings for maskipy-train."""

    data_dir: Path = setting(Path("../shared/data"), "root of the image folders (and manifest)")
    manifest: Path | None = setting(Path("manifest.csv"), "CSV path,label,group under data_dir "
                                    "(empty: scan class folders and group by group_pattern)")
    sources: tuple[str, ...] = setting(("faces", "realworld-photos", "realworld-video"),
                                       "top-level folders of data_dir to train on")
    train_only_sources: tuple[str, ...] = setting(("realworld-video",), "sources kept out of "
                                                  "validation and test (one group, consecutive frames)")
    precropped: tuple[str, ...] = setting(("realworld-photos:0.2", "realworld-video:0.0"),
                                          "source:margin for folders of face crops (no detection)")
    detect_precropped: tuple[str, ...] = setting(
        (), "precropped sources whose face box comes from the edge's detector run on the crop (the "
        "detected box overlapping the annotated one), so training crops are framed as the edge frames "
        "them; the annotated box where the detector finds none")
    label_map: tuple[str, ...] = setting(("CMFD:properly_masked", "IMFD:improperly_masked",
                                          "NMFD:unmasked"), "folder:label renames (MaskedFace-Net)")
    labels: tuple[str, ...] = setting(("properly_masked", "improperly_masked", "unmasked", "not_face"),
                                      "model outputs, in order; not_face is the detector-reject class")
    label_weights: tuple[str, ...] = setting(("improperly_masked:2.0",), "label:weight class "
                                             "weights for the loss (others 1.0)")
    max_per_source_label: int = setting(1500, "cap images per (source, label): near-duplicate "
                                        "video frames add time, not information", low=10, high=10**7)
    mine_negatives: bool = setting(True, "add detector boxes off the face as not_face examples")
    synth_masks: bool = setting(True, "draw proper and improper masks onto real unmasked training "
                                "faces (real-photo improper examples)")
    oversample: tuple[str, ...] = setting((), "source/label:views, e.g. realworld-photos/improperly_"
                                          "masked:4: extra augmented views of a rare real class")
    synth_views: int = setting(1, "augmented views of each drawn-mask face (plus the clean one)",
                               low=0, high=20)
    finetune_epochs: int = setting(0, "second stage: epochs training the last backbone block and "
                                   "Conv_1 with the head (BatchNorm frozen); 0: head only",
                                   low=0, high=200)
    finetune_learning_rate: float = setting(1e-4, "Adam learning rate of the second stage",
                                            low=1e-7, high=1.0)
    group_pattern: str = setting(r"^(\d+)_", "regex on file names giving the identity when there is "
                                 "no manifest (MaskedFace-Net: the FFHQ id)")
    val_fraction: float = setting(0.15, "identities held out for validation", low=0.0, high=0.5)
    test_fraction: float = setting(0.15, "identities held out for the test report", low=0.0, high=0.5)
    seed: int = setting(0, "seed for splits, augmentation and initialisation", low=0, high=2**31)
    weights: str = setting("imagenet", "backbone weights: imagenet, a local .h5 file, or none")
    input_size: int = setting(224, "crop size fed to MobileNetV2", low=32, high=512)
    margin: float = setting(0.2, "crop margin on each side of the face box", low=0.0, high=1.0)
    alpha: float = setting(1.0, "MobileNetV2 width multiplier", low=0.35, high=1.4)
    views: int = setting(2, "augmented views per training crop (plus the clean one)", low=0, high=20)
    epochs: int = setting(40, "head training epochs (early stopping on validation loss)",
                          low=1, high=1000)
    batch_size: int = setting(128, "head training batch size", low=1, high=4096)
    learning_rate: float = setting(1e-3, "Adam learning rate", low=1e-6, high=1.0)
    dropout: float = setting(0.3, "dropout between head layers", low=0.0, high=0.9)
    output_dir: Path = setting(Path("runs/model"), "where the Keras model, metadata and report go")
    cache_dir: Path = setting(Path("cache"), "crop and feature caches")
    limit: int = setting(0, "use at most this many images (0: all), for quick trials", low=0)


def _resolve(base: Path, path: Path | None) -> Path | None:
    if path is None:
        return None
    return path if path.is_absolute() else base / path


def load_train_config(path: str | Path | None) -> tuple[TrainConfig, DetectorConfig]:
    """[train] (relative paths resolved against the config file's folder) and [detector]."""
    parser = read_ini(path)
    shown = str(path) if path is not None else "defaults"
    schema = {"train": TrainConfig, "detector": DetectorConfig}
    foreign = [s for s in (*EDGE_SCHEMA, "convert", "deploy") if s not in schema]
    sections = parse_sections(parser, schema, shown, foreign=foreign)
    train: TrainConfig = sections["train"]
    base = Path(path).resolve().parent if path is not None else Path.cwd()
    import dataclasses

    train = dataclasses.replace(
        train, data_dir=_resolve(base, train.data_dir), output_dir=_resolve(base, train.output_dir),
        cache_dir=_resolve(base, train.cache_dir),
        manifest=_resolve(train.data_dir if train.data_dir.is_absolute() else base / train.data_dir,
                          train.manifest))
    if train.weights.lower() not in ("imagenet", "none"):
        train = dataclasses.replace(train, weights=str(_resolve(base, Path(train.weights).expanduser())))
    for item in (*train.precropped, *train.label_map, *train.label_weights, *train.oversample):
        if item.count(":") != 1:
            raise ConfigError(f"{shown} [train]: {item!r} is not name:value; write e.g. "
                              f"realworld-photos:0.2 or improperly_masked:2.0")
    for item in train.label_weights:
        name, value = item.split(":")
        if name not in train.labels:
            raise ConfigError(f"{shown} [train] label_weights: {name} is not one of labels "
                              f"({', '.join(train.labels)})")
        try:
            float(value)
        except ValueError:
            raise ConfigError(f"{shown} [train] label_weights: {item}: weight is not a number") from None
    if train.val_fraction + train.test_fraction >= 0.9:
        raise ConfigError(f"{shown} [train] val_fraction + test_fraction >= 0.9: nothing left to "
                          f"train on; use e.g. 0.15 and 0.15")
    return train, sections["detector"]


def pairs(items: tuple[str, ...]) -> dict[str, str]:
    """'a:b' items as a dict (validated by load_train_config)."""
    return dict(item.split(":", 1) for item in items)
