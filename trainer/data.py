"""Labelled images from a manifest or class folders, and identity-grouped train/val/test splits."""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from maskipy.edge.errors import ConfigError

from .config import TrainConfig, pairs

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Sample:
    """One labelled image; ``margin`` is set when the image is already a face crop."""

    path: Path
    label: str
    group: str
    source: str
    margin: float | None = None


def _source_of(relative: str) -> str:
    return relative.split("/", 1)[0]


def load_manifest(config: TrainConfig) -> list[Sample]:
    """Rows of a ``path,label,group`` CSV whose top folder is one of ``config.sources``."""
    assert config.manifest is not None
    if not config.manifest.is_file():
        raise ConfigError(f"[train] manifest = {config.manifest}: not found; point it at a CSV "
                          f"with path,label,group columns, or leave it empty to scan folders")
    rename, crops = pairs(config.label_map), pairs(config.precropped)
    samples = []
    with open(config.manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label", "group"} - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{config.manifest}: missing column(s) {', '.join(sorted(missing))}; "
                              f"the header must include path,label,group")
        for row in reader:
            source = _source_of(row["path"])
            if source not in config.sources:
                continue
            label = rename.get(row["label"], row["label"])
            margin = float(crops[source]) if source in crops else None
            samples.append(Sample(config.data_dir / row["path"], label, row["group"], source, margin))
    return samples


def scan_folders(config: TrainConfig) -> list[Sample]:
    """``data_dir/<source>/<class>/<image>`` with the identity taken from ``group_pattern``."""
    rename, crops = pairs(config.label_map), pairs(config.precropped)
    pattern = re.compile(config.group_pattern)
    samples = []
    for source in config.sources:
        root = config.data_dir / source
        if not root.is_dir():
            raise ConfigError(f"[train] sources: {root} is not a folder; list folders of data_dir")
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            label = rename.get(class_dir.name, class_dir.name)
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                match = pattern.search(path.name)
                group = f"{source}:{match.group(1) if match else path.stem}"
                margin = float(crops[source]) if source in crops else None
                samples.append(Sample(path, label, group, source, margin))
    return samples


def load_samples(config: TrainConfig) -> list[Sample]:
    """All training images named by the config, restricted to its labels, capped per source/label."""
    samples = load_manifest(config) if config.manifest is not None else scan_folders(config)
    unknown = Counter(s.label for s in samples if s.label not in config.labels)
    if unknown:
        log.warning("skipping labels not in [train] labels: %s", dict(unknown))
    samples = [s for s in samples if s.label in config.labels]
    samples = _cap(samples, config.max_per_source_label, config.seed)
    if config.limit:
        samples = sorted(samples, key=lambda s: _unit(s.path.name, config.seed))[: config.limit]
    if not samples:
        raise ConfigError(f"[train]: no images found under {config.data_dir} for sources "
                          f"{', '.join(config.sources)} and labels {', '.join(config.labels)}")
    return samples


def _cap(samples: list[Sample], cap: int, seed: int) -> list[Sample]:
    by_key: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        by_key.setdefault((sample.source, sample.label), []).append(sample)
    kept: list[Sample] = []
    for items in by_key.values():
        kept.extend(sorted(items, key=lambda s: _unit(s.path.name, seed))[:cap])
    return sorted(kept, key=lambda s: str(s.path))


def _unit(key: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``: splits do not move when data is added."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def grouped_split(samples: list[Sample], config: TrainConfig) -> dict[str, list[Sample]]:
    """train/val/test with every identity (``group``) on exactly one side.

    MaskedFace-Net masks the same FFHQ face both correctly and incorrectly, and LFW has the same
    photo with and without a mask: a split by image would test on faces the model trained on.
    """
    split: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for sample in samples:
        if sample.source in config.train_only_sources:
            split["train"].append(sample)
            continue
        u = _unit(sample.group, config.seed)
        if u < config.test_fraction:
            split["test"].append(sample)
        elif u < config.test_fraction + config.val_fraction:
            split["val"].append(sample)
        else:
            split["train"].append(sample)
    return split
