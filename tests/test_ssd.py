"""The SSD detector plug-in on real images: bundled models, decoding, framing, merging and errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskipy.edge.config import DetectorConfig
from maskipy.edge.detectors import build_detector
from maskipy.edge.detectors.base import DETECTOR_MODELS
from maskipy.edge.detectors.haar import HaarDetector
from maskipy.edge.detectors.ssd import SsdDetector, SsdFaceModel, load_ssd_model, ssd_anchors
from maskipy.edge.errors import ConfigError, ModelError
from maskipy.edge.geometry import iou, nms
from maskipy.edge.preprocess import read_image, whole_image_box

CLEAR_FACE = "faces/unmasked/lfw-Alejandro_Toledo_0004.jpg"
# A MaskedFace-Net face the seed's Haar cascade misses (tests/test_detect.py's MASKED_FACE).
MASKED_FACE = "faces/properly_masked/mfn-00012_Mask.jpg"
# A real photo of a mask worn under the nose, and a real scene photo as the background.
REAL_IMPROPER = "realworld-photos/improperly_masked"
BACKGROUND = "scenes/without_mask/test1.jpg"
SSD = DetectorConfig(type="ssd")


def _image(shared_data: Path, relative: str) -> np.ndarray:
    return read_image(str(shared_data / relative))


@pytest.mark.parametrize(("name", "anchors"), [("blazeface-back", 896), ("blazeface-short", 896),
                                               ("blazeface-full", 2304)])
def test_bundled_models_load_and_their_anchors_match_the_network(name, anchors):
    model = load_ssd_model(name)
    assert len(ssd_anchors(model.input_size, list(model.strides), list(model.anchors_per_cell))) == anchors
    assert model.metadata["licence"] == "Apache-2.0" and (DETECTOR_MODELS / name / "LICENSE").is_file()
    # The interpreter checks its output size against the anchors computed from model.json.
    SsdFaceModel(model, num_threads=1)


def test_anchor_grid_is_the_mediapipe_layout():
    anchors = ssd_anchors(128, [8, 16], [2, 6])
    assert anchors.shape == (16 * 16 * 2 + 8 * 8 * 6, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[1], anchors[0])  # two anchors share the first cell
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_nms_keeps_the_strongest_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kept = nms(boxes, np.array([0.6, 0.9, 0.5], np.float32), 0.3)
    assert kept.tolist() == [1, 2]


def test_the_ssd_detector_finds_a_clear_face(shared_data):
    frame = _image(shared_data, CLEAR_FACE)
    detector = build_detector(SSD)
    assert isinstance(detector, SsdDetector)
    found = detector.detect(frame)
    assert len(found) == 1
    x, _, w, _ = found[0].box
    assert w > 0.2 * frame.shape[1] and abs(x + w / 2 - frame.shape[1] / 2) < 0.15 * frame.shape[1]


def test_finds_the_masked_face_the_seeds_haar_misses(shared_data):
    frame = _image(shared_data, MASKED_FACE)
    seed = replace(SSD, type="haar", min_neighbors=5, clahe=False, eye_cascades=())
    assert not HaarDetector(seed).detect(frame)
    assert len(build_detector(SSD).detect(frame)) == 1


def test_boxes_are_framed_like_the_haar_detectors(shared_data):
    """The classifier was trained on Haar-framed crops: calibrated SSD boxes must match them."""
    frame = _image(shared_data, CLEAR_FACE)
    haar = HaarDetector(replace(SSD, type="haar", eye_cascades=())).detect(frame)[0].box
    calibrated = build_detector(SSD).detect(frame)[0].box
    raw = build_detector(replace(SSD, calibrate_boxes=False)).detect(frame)[0].box
    assert iou(calibrated, haar) > 0.8
    assert iou(calibrated, haar) > iou(raw, haar)


def _real_improper_in_scene(shared_data: Path, count: int) -> list[tuple[np.ndarray, tuple]]:
    """The first ``count`` real under-the-nose/on-the-chin photos (>= 150 px), each pasted 110 px
    wide into a real scene photo at 640x480, with the true face box."""
    paths = [p for p in sorted((shared_data / REAL_IMPROPER).glob("*.jpg"))
             if min(cv2.imread(str(p)).shape[:2]) >= 150][:count]
    frames = []
    for path in paths:
        crop = read_image(str(path))
        frame = cv2.resize(_image(shared_data, BACKGROUND), (640, 480))
        face = whole_image_box(crop.shape, 0.2)
        scale = 110 / face[2]
        patch = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        frame[120:120 + patch.shape[0], 400:400 + patch.shape[1]] = patch
        frames.append((frame, (400 + int(face[0] * scale), 120 + int(face[1] * scale), 110,
                               int(face[3] * scale))))
    return frames


def test_real_improperly_masked_faces_in_a_real_scene_are_found_more_often_than_by_haar(shared_data):
    frames = _real_improper_in_scene(shared_data, 12)
    ssd, haar = build_detector(SSD), build_detector(DetectorConfig(type="haar"))

    def found(detector) -> int:
        return sum(any(iou(d.box, truth) > 0.3 for d in detector.detect(frame)) for frame, truth in frames)

    assert found(ssd) >= 9
    assert found(ssd) > found(haar)


def test_boxes_map_back_through_the_letterbox(shared_data):
    """The same face in a wider frame (more letterbox) lands on the same frame pixels, shifted."""
    face = _image(shared_data, CLEAR_FACE)
    wide = cv2.copyMakeBorder(face, 0, 0, 150, 0, cv2.BORDER_CONSTANT, value=0)
    detector = build_detector(replace(SSD, ssd_models=("blazeface-back",)))
    (a,), (b,) = detector.detect(face), detector.detect(wide)
    assert abs((b.box[0] - 150) - a.box[0]) <= 0.1 * a.box[2]
    assert abs(b.box[2] - a.box[2]) <= 0.15 * a.box[2]


def test_a_corrupt_model_file_is_refused(tmp_path):
    broken = tmp_path / "blazeface-back"
    shutil.copytree(DETECTOR_MODELS / "blazeface-back", broken)
    with open(broken / "model.tflite", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0\0\0\0")
    with pytest.raises(ModelError, match=r"sha256 .* does not match model.json"):
        SsdDetector(replace(SSD, ssd_models=(str(broken),)))


def test_an_unknown_model_name_lists_the_bundled_ones():
    with pytest.raises(ConfigError, match=r"blazeface-bak: no such detector model; use one of "
                                         r"blazeface-back, blazeface-full, blazeface-short"):
        SsdDetector(replace(SSD, ssd_models=("blazeface-bak",)))


def test_model_json_without_a_field_says_what_is_missing(tmp_path):
    broken = tmp_path / "m"
    shutil.copytree(DETECTOR_MODELS / "blazeface-short", broken)
    meta = json.loads((broken / "model.json").read_text())
    del meta["strides"]
    (broken / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"missing a field .*strides"):
        load_ssd_model(str(broken))
