"""Masks drawn onto real unmasked faces, worn properly or not: real-photo improper examples.

MaskedFace-Net's improper faces are synthetic and all wear one light-blue mask; real improper
wearing (nose out, mask on the chin) is rare in real data. Drawing masks of many colours onto real
unmasked faces, at the heights that make them proper or improper, gives the head examples where
the only difference between the classes is where the mask sits.
"""

from __future__ import annotations

import numpy as np

# Heights within the face box (0 = top, 1 = bottom of a frontal Haar box); each range is sampled.
# proper: from the nose bridge down past the chin; nose_out: from under the nose tip;
# chin: below the mouth.
PLACEMENTS = {
    "proper": ((0.40, 0.48), (0.98, 1.06)),
    "nose_out": ((0.64, 0.70), (1.00, 1.07)),
    "chin": ((0.82, 0.88), (1.05, 1.12)),
}
LABEL_OF = {"proper": "properly_masked", "nose_out": "improperly_masked", "chin": "improperly_masked"}

_COLOURS = np.array([  # RGB: surgical blues and greens, white, black, greys, pinks, navy, beige
    (148, 196, 222), (120, 170, 210), (170, 215, 205), (245, 245, 245), (230, 232, 235),
    (30, 30, 32), (60, 60, 65), (120, 120, 125), (200, 160, 175), (40, 50, 90), (210, 195, 170),
    (150, 40, 50), (90, 120, 80)], dtype=np.float32)


def _mask_polygon(box: tuple[float, float, float, float], top: float, bottom: float,
                  rng: np.random.Generator) -> np.ndarray:
    x, y, w, h = box
    centre = x + w * (0.5 + rng.uniform(-0.03, 0.03))
    half_top = w * rng.uniform(0.40, 0.47)
    half_bottom = w * rng.uniform(0.22, 0.32)
    y_top, y_bottom = y + h * top, y + h * bottom
    peak = h * rng.uniform(0.0, 0.06)  # masks rise over the nose
    points = [(centre - half_top, y_top + peak), (centre - half_top * 0.5, y_top + peak * 0.3),
              (centre, y_top), (centre + half_top * 0.5, y_top + peak * 0.3),
              (centre + half_top, y_top + peak), (centre + half_top * 0.95, y_top + (y_bottom - y_top) * 0.6),
              (centre + half_bottom, y_bottom), (centre, y_bottom + h * 0.03),
              (centre - half_bottom, y_bottom), (centre - half_top * 0.95, y_top + (y_bottom - y_top) * 0.6)]
    return np.array(points, dtype=np.int32)


def _texture(shape: tuple[int, int], colour: np.ndarray, top: int, bottom: int,
             rng: np.random.Generator) -> np.ndarray:
    height, width = shape
    layer = np.ones((height, width, 3), np.float32) * colour
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    shade = 1.0 - 0.18 * np.clip((rows - top) / max(1, bottom - top), 0, 1)  # lower half in shadow
    layer *= shade
    if rng.random() < 0.5:  # pleats of a surgical mask
        for k in range(1, 4):
            row = int(top + (bottom - top) * k / 4)
            layer[max(0, row - 1):row + 1] *= 0.85
    layer += rng.normal(0, 6, layer.shape).astype(np.float32)
    return layer


def draw_mask(crop: np.ndarray, face_box: tuple[float, float, float, float], placement: str,
              rng: np.random.Generator) -> np.ndarray:
    """``crop`` (RGB uint8) with a mask drawn over ``face_box`` (x, y, w, h in crop pixels)."""
    import cv2

    (top_lo, top_hi), (bottom_lo, bottom_hi) = PLACEMENTS[placement]
    polygon = _mask_polygon(face_box, rng.uniform(top_lo, top_hi), rng.uniform(bottom_lo, bottom_hi), rng)
    alpha = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(alpha, [polygon], 255)
    alpha = cv2.GaussianBlur(alpha, (5, 5), 0).astype(np.float32)[..., None] / 255.0
    colour = _COLOURS[rng.integers(len(_COLOURS))] * rng.uniform(0.8, 1.1)
    texture = _texture(crop.shape[:2], colour, int(polygon[:, 1].min()), int(polygon[:, 1].max()), rng)
    # Keep some of the face's light on the mask so it sits in the same scene.
    # Only the broad light, blurred, so the face's own features do not show through the mask.
    grey = crop.astype(np.float32).mean(axis=2)
    luminance = cv2.GaussianBlur(grey, (0, 0), sigmaX=max(2.0, face_box[2] / 5))[..., None] / 128.0
    texture *= np.clip(0.55 + 0.45 * luminance, 0.4, 1.3)
    out = crop.astype(np.float32) * (1 - alpha) + np.clip(texture, 0, 255) * alpha
    x, y, w, h = face_box
    strap = tuple(int(v) for v in np.clip(colour * 0.9, 0, 255))
    top_y = int(polygon[0][1])
    for side in (-1, 1):  # ear loops
        corner = polygon[0] if side < 0 else polygon[4]
        ear = (int(x if side < 0 else x + w), int(y + h * rng.uniform(0.35, 0.5)))
        cv2.line(out, (int(corner[0]), top_y), ear, strap, 1, cv2.LINE_AA)
    return np.clip(out, 0, 255).astype(np.uint8)


def find_face(crop: np.ndarray, detector: object) -> tuple[int, int, int, int] | None:
    """The frontal face box in a crop, when the cascade is sure of it (masks need a frontal face)."""
    found = detector.detect(crop[..., ::-1])  # the detector takes BGR
    big = [d for d in found if d.box[2] >= 0.35 * crop.shape[1]]
    return max(big, key=lambda d: d.box[2]).box if big else None


def synthesize(crops: np.ndarray, detector: object, seed: int) -> tuple[np.ndarray, list[str]]:
    """For each unmasked crop with a frontal face: one proper and one improper masked copy."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    out, labels = [], []
    for crop in tqdm(crops, desc="draw masks", unit="face"):
        crop = np.asarray(crop)
        box = find_face(crop, detector)
        if box is None:
            continue
        for placement in ("proper", rng.choice(["nose_out", "nose_out", "chin"])):
            out.append(draw_mask(crop, box, str(placement), rng))
            labels.append(LABEL_OF[str(placement)])
    size = crops.shape[1] if len(crops) else 0
    return (np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)), labels
