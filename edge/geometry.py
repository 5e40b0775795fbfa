"""Box geometry shared by the detectors, the tracker, the trainer and the benches.

Boxes are ``(x, y, w, h)`` in pixels unless a function says otherwise (``nms`` takes corner arrays).
"""

from __future__ import annotations

import numpy as np

from .preprocess import Box


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax1, bx1) - max(a[0], b[0])
    ih = min(ay1, by1) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def contains_centre(outer: Box, inner: Box) -> bool:
    cx, cy = inner[0] + inner[2] / 2, inner[1] + inner[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def apply_framing(box: tuple[float, float, float, float], framing: tuple[float, float, float]) -> Box:
    """An (x, y, w, h) box with its centre moved by (dx, dy) box widths and its size scaled, as
    integer pixels: how one detector's boxes are made to look like another's."""
    dx, dy, scale = framing
    x, y, w, h = box
    cx, cy = x + w / 2.0 + dx * w, y + h / 2.0 + dy * w
    w2, h2 = w * scale, h * scale
    return int(round(cx - w2 / 2.0)), int(round(cy - h2 / 2.0)), int(round(w2)), int(round(h2))


def clip_box(box: Box, shape: tuple[int, ...]) -> Box | None:
    """``box`` cut to the frame, or None when too little of it is left to be a face."""
    x0, y0 = max(0, box[0]), max(0, box[1])
    x1, y1 = min(shape[1], box[0] + box[2]), min(shape[0], box[1] + box[3])
    if (x1 - x0) * (y1 - y0) < 0.5 * box[2] * box[3]:
        return None
    return x0, y0, x1 - x0, y1 - y0


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the boxes (N, 4 as x0, y0, x1, y1) kept by greedy non-maximum suppression."""
    order = np.argsort(-scores)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(int(best))
        iw = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]),
                     0, None)
        ih = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]),
                     0, None)
        inter = iw * ih
        overlap = inter / np.maximum(area[best] + area[rest] - inter, 1e-9)
        order = rest[overlap < threshold]
    return np.asarray(kept, dtype=np.int64)
