"""Labelled test frames: real face photos composed onto a real-ish background, as camera-like streams."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from bench_common import DATA

from maskipy.edge.preprocess import Box, read_image, whole_image_box

# realworld-photos crops are "box + 20% each side", so the annotated face box is recoverable.
CROP_MARGIN = 0.2
# Face box width as a share of frame width: one person close to the gate, or four further back.
FACE_SHARE = {1: (0.22, 0.28), 4: (0.13, 0.16)}
CLASSES = ("unmasked", "properly_masked", "improperly_masked")


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


def compose_scene(size: tuple[int, int], faces: list[Face], rng: np.random.Generator, name: str,
                  index: int) -> Scene:
    """Place ``faces`` (1 or 4, or none) in a row across the frame, each with a slow drift."""
    width, height = size
    starts: list[tuple[float, float, float]] = []
    slots = max(1, len(faces))
    for slot, _ in enumerate(faces):
        low, high = FACE_SHARE[1 if len(faces) == 1 else 4]
        box_w = width * rng.uniform(low, high)
        cell = width / slots
        x = cell * slot + (cell - box_w) / 2 + rng.uniform(-0.1, 0.1) * (cell - box_w)
        y = rng.uniform(0.2, 0.45) * height
        starts.append((x, y, box_w))
    drift = [(float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.3, 0.3))) for _ in faces]
    return Scene(name, background(size, index), list(faces), starts, drift)


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


def render(scene: Scene, t: int, rng: np.random.Generator) -> tuple[np.ndarray, list[Box]]:
    """Frame ``t`` of a scene: faces moved by their drift plus hand-held jitter, sensor noise added."""
    frame = scene.background.copy()
    boxes = []
    for face, (x, y, box_w), (dx, dy) in zip(scene.faces, scene.starts, scene.drift, strict=True):
        jx, jy = rng.normal(0, 1.5, 2)
        boxes.append(paste(frame, face, x + dx * t + jx, y + dy * t + jy, box_w))
    noise = rng.normal(0, 3.0, frame.shape).astype(np.float32)
    return np.clip(frame.astype(np.float32) + noise, 0, 255).astype(np.uint8), boxes


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


def scene_stream(scene: Scene, frames: int, seed: int) -> Iterator[tuple[bytes, list[Box]]]:
    """``frames`` consecutive JPEG frames of a composed scene with their true face boxes."""
    rng = np.random.default_rng(seed)
    for t in range(frames):
        frame, boxes = render(scene, t, rng)
        yield encode(frame), boxes


def photo_stream(photo: Path, frames: int, seed: int) -> Iterator[tuple[bytes, list[Box] | None]]:
    """``frames`` jittered copies of a real scene photo; its faces are not labelled (None)."""
    rng = np.random.default_rng(seed)
    image = read_image(str(photo))
    for _ in range(frames):
        yield encode(jitter_photo(image, rng)), None
