"""Labelled test frames: real face photos composed onto real scene photos, as camera-like streams.

Backgrounds are the ``scenes/`` photos at the frame size, unblurred (``real_background``): real
clutter, as a gate camera sees it, which is what makes Haar slow. Those photos are portraits:
their own faces stay (a real gate sees bystanders too) and are found once per background
(``own_faces``); recall counts only the faces we placed, and a box on a photo's own face is
neither a hit nor a false positive. Covering them instead (a blurred patch of the photo's own
pixels) was tried and dropped: on these portraits the covers blurred most of the frame, bringing
back the flattering defocused background. ``background`` keeps that old defocused backdrop
(``--backgrounds blurred``, no own faces).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from bench_common import DATA

from maskipy.edge.preprocess import Box, read_image, whole_image_box

# realworld-photos crops are "box + 20% each side", so the annotated face box is recoverable.
CROP_MARGIN = 0.2
# Face box width as a share of frame width: one person close to the gate, or four further back.
FACE_SHARE = {1: (0.22, 0.28), 4: (0.13, 0.16)}
CLASSES = ("unmasked", "properly_masked", "improperly_masked")
# A scene photo's own face is found, to be ignored, when YuNet (the default detector) or the SSD
# scores it at least this (their gate thresholds, so the edge finding a bystander is not a false
# positive) or the seed's Haar finds it.
OWN_FACE_SCORE = 0.3
BACKDROPS = ("real", "blurred")


@dataclass(frozen=True)
class Face:
    """A real face photo and its label; ``box`` is the annotated face inside the image."""

    image: np.ndarray
    label: str
    box: Box


@dataclass
class Scene:
    """One composed view: a background and faces that drift a little from frame to frame."""

    name: str
    background: np.ndarray
    faces: list[Face]
    starts: list[tuple[float, float, float]]  # x, y of the face box and its width, in frame pixels
    drift: list[tuple[float, float]]
    enters: list[int] = dataclasses.field(default_factory=list)  # frame each face appears (none: 0)
    ignore: list[Box] = dataclasses.field(default_factory=list)  # the background's own faces


def load_faces(count: int, seed: int = 0, min_side: int = 150) -> list[Face]:
    """``count`` real face crops from realworld-photos, classes taken in turn, chosen reproducibly."""
    with open(DATA / "manifest.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_class = {c: [r for r in rows if r["path"].startswith("realworld-photos/") and r["label"] == c
                    and min(int(r["width"]), int(r["height"])) >= min_side] for c in CLASSES}
    rng = np.random.default_rng(seed)
    picks = {c: rng.permutation(len(v)) for c, v in by_class.items()}
    faces: list[Face] = []
    for i in range(count):
        label = CLASSES[i % len(CLASSES)]
        row = by_class[label][picks[label][i // len(CLASSES) % len(picks[label])]]
        image = read_image(str(DATA / row["path"]))
        faces.append(Face(image, label, whole_image_box(image.shape, CROP_MARGIN)))
    return faces


def scene_photos() -> list[Path]:
    """The ten real uncropped photos of ``scenes/``, in path order."""
    return sorted(p for p in (DATA / "scenes").rglob("*.jpg"))


def background(size: tuple[int, int], index: int) -> np.ndarray:
    """A real photo scaled to ``size`` and defocused, like a room behind the gate.

    The blur is strong enough that the photo's own faces are not detectable, so every face a
    detector finds in a composed frame is one we placed (0-face frames measure false positives).
    """
    width, height = size
    photo = read_image(str(scene_photos()[index % len(scene_photos())]))
    photo = cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(photo, (0, 0), sigmaX=width / 40)


def fit_photo(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo scaled to cover ``size`` and centre-cropped (aspect kept, nothing stretched)."""
    width, height = size
    scale = max(width / photo.shape[1], height / photo.shape[0])
    new = (max(width, round(photo.shape[1] * scale)), max(height, round(photo.shape[0] * scale)))
    big = cv2.resize(photo, new, interpolation=cv2.INTER_CUBIC)
    top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[top:top + height, left:left + width])


@functools.lru_cache(maxsize=32)
def real_background(size: tuple[int, int], index: int) -> np.ndarray:
    """A real scene photo at ``size``, unblurred, its own faces kept (see the module docstring)."""
    photo = fit_photo(read_image(str(scene_photos()[index % len(scene_photos())])), size)
    photo.flags.writeable = False
    return photo


@functools.lru_cache(maxsize=1)
def _own_face_detectors() -> tuple[Any, ...]:
    from maskipy.edge.config import DetectorConfig
    from maskipy.edge.detectors import build_detector

    return tuple(build_detector(DetectorConfig(type=kind, min_score=OWN_FACE_SCORE,
                                               yunet_min_score=OWN_FACE_SCORE, min_face=16))
                 for kind in ("yunet", "ssd"))


@functools.lru_cache(maxsize=32)
def own_faces(size: tuple[int, int], index: int) -> tuple[Box, ...]:
    """The faces a real background already holds: YuNet's and the SSD's boxes (edge framing) and the
    seed's Haar boxes."""
    photo = real_background(size, index)
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"))
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    haar = [tuple(int(v) for v in b) for b in cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5)]
    return tuple([d.box for detector in _own_face_detectors() for d in detector.detect(photo)] + haar)


def backdrop(size: tuple[int, int], index: int, kind: str = "real") -> np.ndarray:
    """The background of a composed scene: ``real`` (default) or the old ``blurred`` one."""
    if kind not in BACKDROPS:
        raise ValueError(f"backdrop {kind!r}: use one of {', '.join(BACKDROPS)}")
    return real_background(size, index) if kind == "real" else background(size, index)


def _covered(box: tuple[float, float, float, float], others: list[Box]) -> float:
    """The largest share of ``box`` that one of ``others`` covers."""
    x, y, w, h = box
    best = 0.0
    for ox, oy, ow, oh in others:
        iw = max(0.0, min(x + w, ox + ow) - max(x, ox))
        ih = max(0.0, min(y + h, oy + oh) - max(y, oy))
        best = max(best, iw * ih / max(1.0, w * h))
    return best


def compose_scene(size: tuple[int, int], faces: list[Face], rng: np.random.Generator, name: str,
                  index: int, backdrop_kind: str = "real", enters: list[int] | None = None) -> Scene:
    """Place ``faces`` (1 or 4, or none) across the frame, each with a slow drift.

    Each face goes to its slot of a row across the frame unless that covers a face the background
    already holds (or a face placed before it); then to the least covered of 40 random spots. A
    newcomer on top of a bystander would continue the bystander's track, already counted, which
    says nothing about the time to count. Face ``i`` appears at frame ``enters[i]`` (default 0):
    people walk in at any phase of the edge's detection cycle, which is what that time depends on.
    """
    width, height = size
    own = list(own_faces(size, index)) if backdrop_kind == "real" else []
    taken: list[Box] = list(own)
    starts: list[tuple[float, float, float]] = []
    slots = max(1, len(faces))
    for slot, _ in enumerate(faces):
        low, high = FACE_SHARE[1 if len(faces) == 1 else 4]
        box_w = width * rng.uniform(low, high)
        cell = width / slots
        x = cell * slot + (cell - box_w) / 2 + rng.uniform(-0.1, 0.1) * (cell - box_w)
        y = rng.uniform(0.2, 0.45) * height
        spots = [(x, y)] + [(rng.uniform(0, width - box_w), rng.uniform(0.05, 0.6) * height)
                            for _ in range(40)]
        # Face boxes are about 1.2x as tall as wide; the first least-covered spot wins (the row slot).
        cover = [round(_covered((sx, sy, box_w, 1.2 * box_w), taken), 2) for sx, sy in spots]
        x, y = spots[cover.index(min(cover))]
        starts.append((x, y, box_w))
        taken.append((int(x), int(y), int(box_w), int(1.2 * box_w)))
    drift = [(float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.3, 0.3))) for _ in faces]
    return Scene(name, backdrop(size, index, backdrop_kind), list(faces), starts, drift,
                 list(enters) if enters is not None else [0] * len(faces), own)


def paste(frame: np.ndarray, face: Face, x: float, y: float, box_w: float) -> Box:
    """Paste ``face`` so its face box lands at (x, y) with width ``box_w``; returns that box."""
    scale = box_w / face.box[2]
    image = cv2.resize(face.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
                       if scale < 1 else cv2.INTER_LINEAR)
    left, top = int(round(x - face.box[0] * scale)), int(round(y - face.box[1] * scale))
    h, w = image.shape[:2]
    # Feathered oval: the photo's rectangular edge would be an edge no camera frame has.
    alpha = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (w // 2, h // 2), (int(w * 0.48), int(h * 0.5)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=max(1.0, w / 30))[..., None]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(frame.shape[1], left + w), min(frame.shape[0], top + h)
    part = image[y0 - top:y1 - top, x0 - left:x1 - left].astype(np.float32)
    a = alpha[y0 - top:y1 - top, x0 - left:x1 - left]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (part * a + region * (1 - a)).astype(np.uint8)
    bx, by = int(round(left + face.box[0] * scale)), int(round(top + face.box[1] * scale))
    return (bx, by, int(round(face.box[2] * scale)), int(round(face.box[3] * scale)))


def render(scene: Scene, t: int, rng: np.random.Generator) -> tuple[np.ndarray, list[Box], list[int]]:
    """Frame ``t`` of a scene: faces moved by their drift plus hand-held jitter, sensor noise added.

    Returns the frame, the boxes of the faces present at ``t`` and those faces' indices.
    """
    frame = scene.background.copy()
    boxes, present = [], []
    enters = scene.enters or [0] * len(scene.faces)
    for i, (face, (x, y, box_w), (dx, dy)) in enumerate(zip(scene.faces, scene.starts, scene.drift,
                                                             strict=True)):
        jx, jy = rng.normal(0, 1.5, 2)
        if t < enters[i]:
            continue
        boxes.append(paste(frame, face, x + dx * t + jx, y + dy * t + jy, box_w))
        present.append(i)
    noise = rng.normal(0, 3.0, frame.shape).astype(np.float32)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8), boxes, present


def jitter_photo(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real photo shifted by a pixel or two with sensor noise: one 'camera frame' of a still scene."""
    shift = np.float32([[1, 0, rng.normal(0, 1.0)], [0, 1, rng.normal(0, 1.0)]])
    moved = cv2.warpAffine(photo, shift, (photo.shape[1], photo.shape[0]), borderMode=cv2.BORDER_REFLECT)
    noise = rng.normal(0, 3.0, photo.shape).astype(np.float32)
    return np.clip(moved.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def encode(frame: np.ndarray) -> bytes:
    """JPEG bytes of a frame (quality 90), so each pipeline pays a real decode per frame."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def scene_stream(scene: Scene, frames: int, seed: int) -> Iterator[tuple[bytes, list[Box], list[int]]]:
    """``frames`` consecutive JPEG frames of a composed scene, the true face boxes and their faces."""
    rng = np.random.default_rng(seed)
    for t in range(frames):
        frame, boxes, present = render(scene, t, rng)
        yield encode(frame), boxes, present


def photo_stream(photo: Path, frames: int, seed: int) -> Iterator[tuple[bytes, None, list[int]]]:
    """``frames`` jittered copies of a real scene photo; its faces are not labelled (None)."""
    rng = np.random.default_rng(seed)
    image = read_image(str(photo))
    for _ in range(frames):
        yield encode(jitter_photo(image, rng)), None, []


@dataclass
class Stream:
    """One camera session: JPEG frames with the true boxes of the faces present and their indices.

    ``enters`` is the frame each placed face appears and ``labels`` its class; ``ignore`` the
    background's own faces, which count neither as found nor as false (None truth: an unlabelled
    photo stream).
    """

    frames: list[tuple[bytes, list[Box] | None, list[int]]]
    enters: list[int]
    ignore: list[Box]
    labels: list[str] = dataclasses.field(default_factory=list)
