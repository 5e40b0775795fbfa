"""Face crops for training, made by the edge's own detector and crop function, cached on disk."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskipy.edge.config import DetectorConfig
from maskipy.edge.detectors import Detection, Detector, build_detector
from maskipy.edge.errors import ImageError
from maskipy.edge.geometry import iou
from maskipy.edge.preprocess import Box, CropSpec, crop_face, read_image, whole_image_box

from .data import Sample

log = logging.getLogger(__name__)

NOT_FACE = "not_face"


@dataclass
class CropSet:
    """Crops (N, size, size, 3) uint8 with, per crop, its label, identity, source and how it was found."""

    crops: np.ndarray
    labels: list[str]
    groups: list[str]
    sources: list[str]
    how: list[str]  # detected | fallback | precropped | reframed (precropped, detector's box) | mined
    paths: list[str]
    skipped: list[str]

    def select(self, keep: np.ndarray) -> CropSet:
        idx = np.flatnonzero(keep)
        pick = lambda items: [items[i] for i in idx]  # noqa: E731
        return CropSet(self.crops[idx], pick(self.labels), pick(self.groups), pick(self.sources),
                       pick(self.how), pick(self.paths), self.skipped)

    def without_pixels(self) -> CropSet:
        """The same crops' labels, identities and provenance with no pixels (an empty array): what is
        left to keep once the pixels are copied elsewhere or turned into features."""
        return dataclasses.replace(self, crops=np.empty((0, *self.crops.shape[1:]), self.crops.dtype))


# A detected box stands for a precropped face's annotated box when they overlap at least this much.
PRECROPPED_MIN_IOU = 0.3
# SSD boxes off the face scoring at most this are mined as not_face (see _weak_score).
WEAK_SSD_SCORE = 0.6


@functools.lru_cache(maxsize=4)
def _detector(config: DetectorConfig) -> Detector:
    """One detector per config and process: loading the cascades costs more than a detection."""
    return build_detector(config)


def _detect_one(args: tuple[str, DetectorConfig]) -> tuple[str, tuple[int, int] | None, list[Detection]]:
    path, config = args
    import cv2

    cv2.setNumThreads(1)
    try:
        image = read_image(path)
    except ImageError:
        return path, None, []
    return path, image.shape[:2], _detector(config).detect(image)


def detect_all(paths: list[str], config: DetectorConfig, workers: int = 2) -> dict[str, tuple]:
    """Run the detector over images in worker processes; returns path -> (shape or None, detections)."""
    from tqdm import tqdm

    jobs = [(p, config) for p in paths]
    if workers <= 1 or len(paths) < 64:  # a pool costs more than it saves on a few images
        found = map(_detect_one, jobs)
        return {path: (shape, dets) for path, shape, dets in tqdm(found, total=len(paths),
                                                                  desc="detect faces", unit="img")}
    results: dict[str, tuple] = {}
    # spawn, not fork: a forked child of a process that has loaded TensorFlow can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        found = pool.map(_detect_one, jobs, chunksize=16)
        for path, shape, dets in tqdm(found, total=len(paths), desc="detect faces", unit="img"):
            results[path] = (shape, dets)
    return results


def typical_boxes(found: dict[str, tuple], samples: list[Sample]) -> dict[str, tuple[float, ...]]:
    """Median detected box per source, relative to image size: the no-face fallback.

    A fallback that looks like a detected face keeps "no face found" from becoming a feature:
    Haar misses improperly masked faces more often, so a whole-image fallback would tell the
    model the class.
    """
    rel: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for sample in samples:
        shape, dets = found.get(str(sample.path), (None, []))
        if shape is not None and dets:
            x, y, w, h = max(dets, key=lambda d: d.box[2]).box
            rel[sample.source].append((x / shape[1], y / shape[0], w / shape[1], h / shape[0]))
    return {source: tuple(np.median(np.array(boxes), axis=0)) for source, boxes in rel.items()}


def _fallback_box(shape: tuple[int, int], typical: tuple[float, ...] | None) -> Box:
    height, width = shape
    if typical is None:  # no detection at all in this source: a centred square of 60% of the short side
        side = 0.6 * min(height, width)
        return (int((width - side) / 2), int((height - side) / 2), int(side), int(side))
    rx, ry, rw, rh = typical
    return (int(rx * width), int(ry * height), max(2, int(rw * width)), max(2, int(rh * height)))


def _weak_score(detector: DetectorConfig) -> float:
    """The highest score of a box mined as a false positive: weak boxes only, since a strong one
    away from the face is often another person's face (LFW photos have bystanders)."""
    return detector.min_neighbors + 3 if detector.type == "haar" else WEAK_SSD_SCORE


def _mined(dets: list[Detection], face: Box | None, max_score: float) -> list[Box]:
    """Detector boxes away from the face: real false positives, taught as not_face."""
    out = []
    for det in dets:
        if face is not None and (iou(det.box, face) > 0.05 or det.box == face):
            continue
        if det.score <= max_score:
            out.append(det.box)
    return out[:1]


def cache_key(samples: list[Sample], detector: DetectorConfig, spec: CropSpec, mine: bool,
              detect_precropped: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256()
    # every_n_frames only paces the live loop; it does not change what is detected in an image.
    detector = dataclasses.replace(detector, every_n_frames=1)
    values = dataclasses.asdict(detector)
    if not detector.closeup_cascades:
        # Options added after a cache was made leave its key alone while they are off.
        values = {k: v for k, v in values.items() if not k.startswith("closeup_")}
    parts = [repr(tuple(values.values())), repr(spec), str(mine)]
    if detect_precropped:  # caches made before the option existed keep their key
        parts.append(repr(detect_precropped))
    for part in parts:
        digest.update(part.encode())
    for sample in samples:
        digest.update(f"{sample.path}|{sample.label}|{sample.margin}\n".encode())
    return digest.hexdigest()[:16]


def build_crops(samples: list[Sample], detector: DetectorConfig, spec: CropSpec, cache_dir: Path,
                mine_negatives: bool = True, workers: int = 2,
                detect_precropped: tuple[str, ...] = ()) -> CropSet:
    """Crops for every sample, from the cache when the same images, detector and crop were used.

    Precropped samples of a ``detect_precropped`` source are framed by the detector too: the
    detected box that overlaps the annotated one, so a real photo is cropped as the edge would crop it.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(samples, detector, spec, mine_negatives, detect_precropped)
    array_path, meta_path = cache_dir / f"crops-{key}.npy", cache_dir / f"crops-{key}.json"
    if array_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        log.info("crops: %d from cache %s", len(meta["labels"]), array_path)
        return CropSet(np.load(array_path, mmap_mode="r"), **meta)
    to_detect = [str(s.path) for s in samples if s.margin is None or s.source in detect_precropped]
    found = detect_all(to_detect, detector, workers) if to_detect else {}
    typical = typical_boxes(found, samples)
    crops, meta = _make_crops(samples, found, typical, spec, mine_negatives, detector)
    np.save(array_path, crops)
    meta_path.write_text(json.dumps(meta))
    return CropSet(np.load(array_path, mmap_mode="r"), **meta)


def _make_crops(samples: list[Sample], found: dict[str, tuple], typical: dict, spec: CropSpec,
                mine_negatives: bool, detector: DetectorConfig) -> tuple[np.ndarray, dict]:
    from tqdm import tqdm

    crops: list[np.ndarray] = []
    meta: dict[str, list] = {k: [] for k in ("labels", "groups", "sources", "how", "paths", "skipped")}

    def add(crop: np.ndarray, sample: Sample, label: str, how: str) -> None:
        crops.append(crop)
        for name, value in (("labels", label), ("groups", sample.group), ("sources", sample.source),
                            ("how", how), ("paths", str(sample.path))):
            meta[name].append(value)

    for sample in tqdm(samples, desc="crop faces", unit="img"):
        try:
            image = read_image(str(sample.path))
        except ImageError:
            meta["skipped"].append(str(sample.path))
            continue
        dets = found.get(str(sample.path), (None, []))[1]
        if sample.margin is not None:
            annotated = whole_image_box(image.shape, sample.margin)
            matching = [d.box for d in dets if iou(d.box, annotated) >= PRECROPPED_MIN_IOU]
            box = max(matching, key=lambda b: iou(b, annotated)) if matching else annotated
            add(crop_face(image, box, spec), sample, sample.label,
                "reframed" if matching else "precropped")
            continue
        face = max(dets, key=lambda d: d.box[2]).box if dets else None
        how = "detected" if face is not None else "fallback"
        box = face or _fallback_box(image.shape[:2], typical.get(sample.source))
        add(crop_face(image, box, spec), sample, sample.label, how)
        if mine_negatives and sample.label != NOT_FACE:
            for neg in _mined(dets, face, max_score=_weak_score(detector)):
                add(crop_face(image, neg, spec), sample, NOT_FACE, "mined")
    if meta["skipped"]:
        log.warning("skipped %d unreadable images, e.g. %s", len(meta["skipped"]),
                    ", ".join(meta["skipped"][:3]))
    empty = np.zeros((0, spec.size, spec.size, 3), np.uint8)
    return (np.stack(crops) if crops else empty), meta


def fallback_rates(crop_set: CropSet) -> dict[str, float]:
    """Share of detector-cropped images per class where no face was found."""
    total, fell = Counter(), Counter()
    for label, how in zip(crop_set.labels, crop_set.how, strict=True):
        if how in ("detected", "fallback"):
            total[label] += 1
            fell[label] += how == "fallback"
    return {label: round(fell[label] / total[label], 4) for label in sorted(total)}
