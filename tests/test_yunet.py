"""The YuNet detector plug-in on real photos: bundled models, scaling, framing, landmarks and errors;
and BlazeFace's keypoints, kept the same way."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskipy.edge.config import DetectorConfig
from maskipy.edge.detectors import DETECTOR_TYPES, build_detector
from maskipy.edge.detectors.base import DETECTOR_MODELS
from maskipy.edge.detectors.yunet import (
    YunetDetector,
    check_opencv,
    load_yunet_model,
    scaled_size,
)
from maskipy.edge.errors import ConfigError, ModelError
from maskipy.edge.preprocess import read_image

# A scenes-dev photo with three annotated, properly masked faces 57-82 px wide.
SCENE = "scenes-dev/0003a6c46855ffe528311a672d95a0c7.jpg"
CLEAR_FACE = "faces/unmasked/lfw-Alejandro_Toledo_0004.jpg"
YUNET = DetectorConfig(type="yunet", min_face=16)


def _faces(shared_data: Path, path: str) -> list[tuple[int, int, int, int]]:
    with open(shared_data / "scenes-dev" / "boxes.csv", newline="", encoding="utf-8") as handle:
        return [tuple(int(r[k]) for k in "xywh") for r in csv.DictReader(handle) if r["path"] == path]


def _found(face: tuple[int, ...], box: tuple[int, ...]) -> bool:
    fx, fy, fw, fh = face
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return fx <= cx <= fx + fw and fy <= cy <= fy + fh and 0.5 * fw <= box[2] <= 2 * fw


@pytest.mark.parametrize(("name", "licence"), [("yunet-n", "Apache-2.0"), ("yunet-s", "MIT")])
def test_bundled_models_carry_licence_source_sha256_and_measured_framing(name, licence):
    model = load_yunet_model(name)
    assert model.metadata["licence"] == licence and (DETECTOR_MODELS / name / "LICENSE").is_file()
    assert "@" in model.metadata["source"]  # the upstream commit
    assert 0.05 < model.default_score < 0.95 and model.default_long_side == 320
    # YuNet's boxes are tighter than Haar's: the measured framing enlarges them.
    assert 1.05 < model.framing[2] < 1.4 and "faces" in model.metadata["framing_measured_on"]


def test_registered_configurable_and_the_default():
    assert "yunet" in DETECTOR_TYPES
    assert isinstance(build_detector(DetectorConfig(type="yunet")), YunetDetector)
    assert isinstance(build_detector(DetectorConfig()), YunetDetector)


def test_finds_the_masked_faces_of_a_real_scene_with_five_landmarks_each(shared_data):
    frame = read_image(str(shared_data / SCENE))
    detections = build_detector(YUNET).detect(frame)
    faces = _faces(shared_data, SCENE)
    assert all(any(_found(face, d.box) for d in detections) for face in faces)
    for d in detections:
        assert d.source == "yunet-n" and d.landmarks is not None and len(d.landmarks) == 5
        (rex, rey), (lex, ley), (_nx, ny), (rmx, rmy), (lmx, lmy) = d.landmarks
        x, y, w, h = d.box
        # In full-frame pixels, inside the (reframed, larger) box; eyes above the nose above the mouth.
        assert all(x <= px <= x + w and y <= py <= y + h for px, py in d.landmarks)
        assert max(rey, ley) < ny < min(rmy, lmy) and rex < lex and rmx < lmx


def test_the_frame_is_scaled_to_the_long_side_and_boxes_mapped_back(shared_data):
    assert scaled_size((480, 640), 320) == (320, 240, 2.0)
    assert scaled_size((200, 300), 320) == (300, 200, 1.0)  # never scaled up
    frame = read_image(str(shared_data / SCENE))
    full = build_detector(replace(YUNET, yunet_long_side=0)).detect(frame)
    small = build_detector(replace(YUNET, yunet_long_side=320)).detect(frame)
    for face in _faces(shared_data, SCENE):
        a = next(d.box for d in full if _found(face, d.box))
        b = next(d.box for d in small if _found(face, d.box))
        assert abs(a[0] - b[0]) < 0.15 * face[2] and abs(a[2] - b[2]) < 0.2 * face[2]


def test_a_closeup_face_filling_the_frame_is_found_at_320_px(shared_data):
    """Someone at the gate: a face 400 px wide in a 640x480 frame (YuNet alone finds up to ~300 px)."""
    image = read_image(str(shared_data / CLEAR_FACE))  # 250 px LFW photo, face ~100 px in the middle
    big = cv2.resize(image, None, fx=4.0, fy=4.0, interpolation=cv2.INTER_LINEAR)
    cy, cx = big.shape[0] // 2, big.shape[1] // 2
    frame = big[cy - 240:cy + 240, cx - 320:cx + 320]
    detections = build_detector(YUNET).detect(frame)
    assert detections and detections[0].box[2] > 300
    x, y, w, h = detections[0].box
    assert abs(x + w / 2 - 320) < 60 and abs(y + h / 2 - 240) < 80


def test_framing_and_the_min_face_floor(shared_data):
    frame = read_image(str(shared_data / SCENE))
    framed = build_detector(YUNET).detect(frame)
    raw = build_detector(replace(YUNET, calibrate_boxes=False)).detect(frame)
    factor = load_yunet_model("yunet-n").framing[2]
    assert len(framed) == len(raw)
    for a, b in zip(framed, raw, strict=True):  # both strongest first
        assert abs(a.box[2] - factor * b.box[2]) <= 2
    widest = max(d.box[2] for d in framed)
    assert build_detector(replace(YUNET, min_face=widest + 1)).detect(frame) == []


def test_grey_frames_and_score_threshold(shared_data):
    frame = read_image(str(shared_data / SCENE))
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    assert build_detector(YUNET).detect(grey)
    strict = build_detector(replace(YUNET, yunet_min_score=0.95)).detect(frame)
    loose = build_detector(replace(YUNET, yunet_min_score=0.3)).detect(frame)
    assert len(strict) <= len(loose) and all(d.score >= 0.3 for d in loose)


def test_model_errors_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="no such YuNet model"):
        load_yunet_model("yunet-x")
    copy = tmp_path / "yunet-n"
    shutil.copytree(DETECTOR_MODELS / "yunet-n", copy)
    with open(copy / "model.onnx", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)
    with pytest.raises(ModelError, match="corrupt"):
        load_yunet_model(str(copy))
    # A file that matches its sha256 but is no model: OpenCV's refusal becomes a ModelError.
    (copy / "model.onnx").write_bytes(b"not an onnx model")
    meta = json.loads((copy / "model.json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256(b"not an onnx model").hexdigest()
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cannot load it"):
        YunetDetector(replace(YUNET, yunet_model=str(copy)))
    (copy / "model.json").unlink()
    with pytest.raises(ModelError, match=r"model\.json: missing"):
        load_yunet_model(str(copy))


def test_opencv_too_old_for_yunet_is_reported_with_the_fix(monkeypatch):
    assert check_opencv() == cv2.__version__  # this venv's pip OpenCV runs YuNet
    # Debian Bookworm's apt OpenCV is 4.6, which cannot read these models.
    monkeypatch.setattr(cv2, "__version__", "4.6.0")
    with pytest.raises(ModelError, match=r"opencv-python-headless>=4.8"):
        YunetDetector(YUNET)


def test_blazeface_keypoints_are_kept_on_its_detections(shared_data):
    frame = read_image(str(shared_data / CLEAR_FACE))
    detections = build_detector(DetectorConfig(type="ssd")).detect(frame)
    assert detections
    marks = detections[0].landmarks
    assert marks is not None and len(marks) == 6
    (rex, rey), (lex, ley), (_nx, ny), (_mx, my) = marks[:4]
    x, y, w, h = detections[0].box
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in marks[:4])
    assert rex < lex and max(rey, ley) < ny < my
    # YuNet's eyes on the same face agree with BlazeFace's within a tenth of the face width.
    yunet = build_detector(YUNET).detect(frame)[0].landmarks
    assert np.hypot(yunet[0][0] - rex, yunet[0][1] - rey) < 0.1 * w
