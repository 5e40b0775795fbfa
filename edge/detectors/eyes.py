"""The eye-pair stage: two eyes of a like size side by side imply a face, masked or not."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..preprocess import Box

# Face box from an eye pair, in units of the distance between the eye centres. Calibrated by
# medians over 66 faces/ and realworld-photos images (seed 0) where frontalface_default also
# fired (spread: width 0.48, top 0.23), so an eye-pair box crops a face like a frontal box does.
FACE_WIDTH = 2.8
FACE_TOP = 1.12
FACE_DX = 0.0

# What makes two eye boxes a pair (eye widths and centre distance from the Haar eye cascades):
# a like size, side by side, roughly level (a head tilted up to ~20 degrees).
MAX_SIZE_RATIO = 1.5
MIN_SPACING = 1.3
MAX_SPACING = 3.2
MAX_SLOPE = 0.35


@dataclass(frozen=True)
class EyePair:
    """A face box inferred from two eyes, and its evidence (the weaker eye's neighbour count)."""

    box: Box
    score: float


def _centre(box: np.ndarray) -> tuple[float, float]:
    return box[0] + box[2] / 2.0, box[1] + box[3] / 2.0


def _is_pair(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether eye boxes a (left) and b (right) look like the two eyes of one upright face."""
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    width = (a[2] + b[2]) / 2.0
    spacing = bx - ax
    if max(a[2], b[2]) > MAX_SIZE_RATIO * min(a[2], b[2]):
        return False
    if not MIN_SPACING * width <= spacing <= MAX_SPACING * width:
        return False
    return abs(by - ay) <= MAX_SLOPE * spacing


def face_from_eyes(a: np.ndarray, b: np.ndarray) -> Box:
    """The square face box that a left and a right eye box imply (see FACE_* above)."""
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    spacing = bx - ax
    side = FACE_WIDTH * spacing
    cx = (ax + bx) / 2.0 + FACE_DX * spacing
    top = (ay + by) / 2.0 - FACE_TOP * spacing
    return int(round(cx - side / 2.0)), int(round(top)), int(round(side)), int(round(side))


def pair_eyes(boxes: np.ndarray, neighbours: np.ndarray) -> list[EyePair]:
    """Face boxes from eye boxes; each eye joins at most one pair, the most confident first."""
    order = np.argsort(boxes[:, 0]) if len(boxes) else np.zeros(0, dtype=int)
    candidates: list[tuple[float, float, int, int]] = []
    for i_pos, i in enumerate(order):
        for j in order[i_pos + 1:]:
            if _is_pair(boxes[i], boxes[j]):
                level = abs(_centre(boxes[i])[1] - _centre(boxes[j])[1]) / max(1.0, boxes[i][2])
                candidates.append((float(min(neighbours[i], neighbours[j])), -level, int(i), int(j)))
    used: set[int] = set()
    pairs: list[EyePair] = []
    # Strongest, most level pairs first: an eyebrow or nostril that also paired loses its eye.
    for score, _, i, j in sorted(candidates, reverse=True):
        if i in used or j in used:
            continue
        used.update((i, j))
        pairs.append(EyePair(face_from_eyes(boxes[i], boxes[j]), score))
    return pairs


class EyePairStage:
    """Haar eye cascades on a grey frame, paired into face boxes.

    Built once by ``HaarDetector`` from ``[detector] eye_cascades``; ``find`` takes the grey frame
    the eye cascades should see and the smallest face (in its pixels) worth reporting.
    """

    def __init__(self, cascades: list, scale_factor: float, min_neighbors: int) -> None:
        self._cascades = cascades
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors

    def find(self, grey: np.ndarray, min_face: int) -> list[EyePair]:
        """Face boxes (in ``grey`` pixels) implied by eye pairs, at least ``min_face`` wide."""
        # An eye is about a fifth of a face's width; the cascades cannot see below their 20 px window.
        min_eye = max(8, int(min_face * 0.2))
        max_eye = max(min_eye + 1, grey.shape[1] // 4)
        all_boxes, all_neighbours = [], []
        for cascade in self._cascades:
            boxes, neighbours = cascade.detectMultiScale2(
                grey, scaleFactor=self._scale_factor, minNeighbors=self._min_neighbors,
                minSize=(min_eye, min_eye), maxSize=(max_eye, max_eye))
            if len(boxes):
                all_boxes.append(np.asarray(boxes, dtype=float))
                all_neighbours.append(np.ravel(neighbours).astype(float))
        if not all_boxes:
            return []
        pairs = pair_eyes(np.concatenate(all_boxes), np.concatenate(all_neighbours))
        return [p for p in pairs if p.box[2] >= min_face]
