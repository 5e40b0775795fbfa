"""Backbone features computed once per crop and view, cached, so the head trains in seconds."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.preprocess import scale_pixels

from .augment import augment

log = logging.getLogger(__name__)


def extract(extractor: Any, crops: np.ndarray, batch_size: int = 64, desc: str = "features",
            view_seed: int | None = None) -> np.ndarray:
    """Pooled features for uint8 crops; ``view_seed`` set: an augmented view of each crop."""
    from tqdm import tqdm

    rng = np.random.default_rng(view_seed) if view_seed is not None else None
    out = []
    for start in tqdm(range(0, len(crops), batch_size), desc=desc, unit="batch"):
        batch = np.asarray(crops[start:start + batch_size])
        if rng is not None:
            batch = np.stack([augment(c, rng) for c in batch])
        out.append(extractor.predict_on_batch(scale_pixels(batch)))
    dim = int(extractor.output_shape[-1])
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


def cached_features(extractor: Any, crops: np.ndarray, cache_dir: Path, key: str, desc: str,
                    view_seed: int | None = None) -> np.ndarray:
    """``extract`` with a disk cache keyed on the crops, the backbone and the view."""
    digest = hashlib.sha256(f"{key}|{view_seed}|{len(crops)}".encode()).hexdigest()[:16]
    path = cache_dir / f"features-{digest}.npy"
    if path.is_file():
        log.info("%s: features from cache %s", desc, path)
        return np.load(path)
    features = extract(extractor, crops, desc=desc, view_seed=view_seed)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, features)
    return features
