"""SSD face detector plug-in: TFLite BlazeFace-style models, anchors and box decoding in numpy.

A detector model lives in a directory of its own (``model.tflite``, ``model.json``, ``LICENSE``);
``model.json`` gives the input size, the anchor layout, the input range, the licence and source,
the sha256 of the model file, and the framing that makes its boxes look like the Haar
detector's (so the classifier sees a face framed alike whichever detector found it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..classifier.interpreter import load_interpreter
from ..config import DetectorConfig
from ..errors import ConfigError, ModelError
from ..geometry import apply_framing, clip_box, nms
from .base import Detection, non_max_suppression, read_model_dir, resolve_model_dir

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SsdModel:
    """A verified detector model: its file, input size, anchor centres and box framing."""

    name: str
    path: Path
    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]
    input_range: tuple[float, float]
    framing: tuple[float, float, float]  # centre dx, dy (in box widths) and size factor
    sha256: str
    metadata: dict[str, Any]


def ssd_anchors(input_size: int, strides: list[int], anchors_per_cell: list[int]) -> np.ndarray:
    """Anchor centres of a MediaPipe-style SSD: each stride's grid, ``anchors_per_cell`` per cell.

    BlazeFace's anchors all have unit size (the network regresses width and height directly),
    so only the centres matter; consecutive layers with the same stride share one grid.
    """
    grids = []
    for stride, per_cell in zip(strides, anchors_per_cell, strict=True):
        cells = input_size // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        grids.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(grids).astype(np.float32)


def resolve_detector_model(name: str) -> Path:
    """A bundled SSD name (``blazeface-back``) or a path to a detector model directory."""
    return resolve_model_dir(name, "model.tflite", "ssd_models")


def _ssd_fields(meta: dict[str, Any]) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[float, float],
                                                tuple[float, float, float]]:
    size = int(meta["input_size"])
    strides = tuple(int(s) for s in meta["strides"])
    per_cell = tuple(int(n) for n in meta["anchors_per_cell"])
    if len(strides) != len(per_cell) or any(size % s for s in strides):
        raise ValueError(f"strides {strides} and anchors_per_cell {per_cell} do not fit {size} px")
    low, high = (float(v) for v in meta["input_range"])
    dx, dy, scale = (float(v) for v in meta["framing"])
    return size, strides, per_cell, (low, high), (dx, dy, scale)


def load_ssd_model(name: str) -> SsdModel:
    """Read and verify a detector model directory; failures name the file and the fix."""
    directory = resolve_detector_model(name)
    (size, strides, per_cell, span, framing), meta, path, sha = read_model_dir(directory, "model.tflite",
                                                                             _ssd_fields)
    return SsdModel(directory.name, path, size, strides, per_cell, span, framing, sha, meta)


class SsdFaceModel:
    """One detector model in a TFLite interpreter built once; ``detect`` returns scored boxes.

    The frame is letterboxed to the model's square input (aspect kept, black bars), so a box maps
    back to frame pixels with one scale and offset. BlazeFace is fully convolutional, so
    ``input_size`` may exceed the size it was trained at: a larger input finds smaller faces at
    the square of the cost (the anchor grid grows with it; box offsets are in input pixels).
    """

    def __init__(self, model: SsdModel, num_threads: int = 2, input_size: int = 0) -> None:
        self.model = model
        self.interpreter, self.runtime = load_interpreter(model.path, num_threads, "")
        self.size = input_size or model.input_size
        if self.size % max(model.strides):
            raise ConfigError(f"[detector] ssd_input_size = {input_size}: must be a multiple of "
                             f"{max(model.strides)} for {model.name}")
        if self.size != model.input_size:
            index = self.interpreter.get_input_details()[0]["index"]
            self.interpreter.resize_tensor_input(index, [1, self.size, self.size, 3])
            self.interpreter.allocate_tensors()
        self.anchors = ssd_anchors(self.size, list(model.strides), list(model.anchors_per_cell))
        self._input = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        # Regressors (N, 16: box and six keypoints) and scores (N, 1); told apart by width.
        by_width = sorted(outputs, key=lambda o: -int(o["shape"][-1]))
        self._boxes, self._scores = by_width[0]["index"], by_width[-1]["index"]
        shape = tuple(int(v) for v in self._input["shape"])
        if shape[1:3] != (self.size, self.size) or int(by_width[0]["shape"][1]) != len(self.anchors):
            raise ModelError(f"{model.path}: input {shape} or {by_width[0]['shape'][1]} anchors do not "
                             f"match model.json ({self.size} px, {len(self.anchors)} anchors)")
        low, high = model.input_range
        self._pixel_scale, self._pixel_offset = (high - low) / 255.0, low

    def detect(self, frame_bgr: np.ndarray, min_score: float, iou_threshold: float
               ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4 as x0, y0, x1, y1 in frame pixels) and scores, strongest first."""
        boxes, scores, _ = self.detect_with_keypoints(frame_bgr, min_score, iou_threshold)
        return boxes, scores

    def detect_with_keypoints(self, frame_bgr: np.ndarray, min_score: float, iou_threshold: float
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As ``detect``, with each box's keypoints (N, K, 2 as x, y in frame pixels; BlazeFace's
        six: right eye, left eye, nose tip, mouth, right and left ear tragion)."""
        import cv2

        size = self.size
        h, w = frame_bgr.shape[:2]
        scale = size / max(h, w)
        new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        small = cv2.resize(frame_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)
        square = cv2.copyMakeBorder(small, pad_y, size - new_h - pad_y, pad_x, size - new_w - pad_x,
                                    cv2.BORDER_CONSTANT, value=0)
        rgb = cv2.cvtColor(square, cv2.COLOR_BGR2RGB).astype(np.float32)
        self.interpreter.set_tensor(self._input["index"],
                                    (rgb * self._pixel_scale + self._pixel_offset)[None])
        self.interpreter.invoke()
        logits = self.interpreter.get_tensor(self._scores)[0, :, 0]
        # Compare logits, not probabilities: no sigmoid over every anchor per frame.
        keep = np.flatnonzero(logits > np.log(min_score / (1.0 - min_score)))
        if keep.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 0, 2), np.float32)
        regressors = self.interpreter.get_tensor(self._boxes)[0, keep]
        raw = regressors[:, :4] / size
        centres = raw[:, :2] + self.anchors[keep]
        # The regressors after the box are keypoint offsets from the anchor centre, like the box's.
        points = regressors[:, 4:4 + 2 * ((regressors.shape[1] - 4) // 2)].reshape(len(keep), -1, 2)
        points = ((points / size + self.anchors[keep][:, None, :]) * size - [pad_x, pad_y]) / scale
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1) * size
        boxes = (boxes - [pad_x, pad_y, pad_x, pad_y]) / scale
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, points = boxes[valid], scores[valid], points[valid]
        order = nms(boxes, scores, iou_threshold)
        return boxes[order], scores[order], points[order]


class SsdDetector:
    """Face detector plug-in over one or more SSD models (``[detector] type = ssd``).

    Each model runs on the whole frame; its boxes are reframed to the Haar framing the classifier
    was trained on and cut to the frame; several models' boxes are merged by non-maximum
    suppression (measured: blazeface-back alone finds more faces than merged with the short-range
    model, whose small-face boxes win the merge; README, "Finding faces")::

        [detector]
        type = ssd
        ssd_models = blazeface-back
        ssd_input_size = 320
    """

    def __init__(self, config: DetectorConfig) -> None:
        if not config.ssd_models:
            raise ConfigError("[detector] ssd_models: empty; name at least one, e.g. blazeface-back")
        self.config = config
        self.models = [SsdFaceModel(load_ssd_model(name), config.num_threads, config.ssd_input_size)
                       for name in config.ssd_models]
        log.info("detector: ssd %s via %s", ", ".join(m.model.name for m in self.models),
                 self.models[0].runtime)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces in a BGR (or grey) frame, strongest first."""
        import cv2

        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        found: list[Detection] = []
        for face_model in self.models:
            boxes, scores, points = face_model.detect_with_keypoints(frame, self.config.min_score,
                                                                     self.config.nms_threshold)
            framing = face_model.model.framing if self.config.calibrate_boxes else (0.0, 0.0, 1.0)
            for (x0, y0, x1, y1), score, marks in zip(boxes, scores, points, strict=True):
                framed = apply_framing((x0, y0, x1 - x0, y1 - y0), framing)
                if framed[2] < self.config.min_face:
                    continue
                clipped = clip_box(framed, frame.shape)
                if clipped is not None:
                    found.append(Detection(clipped, float(score), face_model.model.name,
                                           tuple((float(x), float(y)) for x, y in marks)))
        return non_max_suppression(found, self.config.nms_threshold) if len(self.models) > 1 else found
