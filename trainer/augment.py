"""Augmentations that look like gate cameras: pose jitter, light, blur, grey/IR, low resolution, JPEG."""

from __future__ import annotations

import numpy as np


def _affine(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = crop.shape[0]
    angle = rng.uniform(-12, 12)
    zoom = rng.uniform(0.9, 1.12)
    shift = rng.uniform(-0.06, 0.06, size=2) * size
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, zoom)
    matrix[:, 2] += shift
    return cv2.warpAffine(crop, matrix, (size, size), borderMode=cv2.BORDER_REFLECT_101)


def _light(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    contrast = rng.uniform(0.6, 1.4)
    brightness = rng.uniform(-45, 45)
    gamma = rng.uniform(0.7, 1.5)  # low light compresses the shadows
    out = crop.astype(np.float32)
    out = (out - 128.0) * contrast + 128.0 + brightness
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
    return np.clip(out, 0, 255).astype(np.uint8)


def _grey(crop: np.ndarray) -> np.ndarray:
    grey = (0.299 * crop[..., 0] + 0.587 * crop[..., 1] + 0.114 * crop[..., 2]).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _low_resolution(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    side = int(rng.integers(24, 65))  # a far face on a gate camera is 24-64 px wide
    size = crop.shape[0]
    small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _jpeg(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    quality = int(rng.integers(20, 80))
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else crop


def _hue(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotate hues: every improper mask in MaskedFace-Net is light blue, so colour must not be the cue."""
    import cv2

    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(rng.integers(0, 180))) % 180
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random camera-like view of an RGB uint8 crop (same size and dtype)."""
    import cv2

    out = crop[:, ::-1] if rng.random() < 0.5 else crop
    out = _affine(np.ascontiguousarray(out), rng)
    if rng.random() < 0.3:
        out = _hue(out, rng)
    out = _light(out, rng)
    if rng.random() < 0.3:
        out = _grey(out)
    if rng.random() < 0.35:
        out = _low_resolution(out, rng)
    elif rng.random() < 0.3:
        k = int(rng.choice([3, 5, 7]))
        out = cv2.GaussianBlur(out, (k, k), 0)
    if rng.random() < 0.3:
        out = _jpeg(out, rng)
    return out
