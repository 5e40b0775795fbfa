"""The Haar detector on real images: finding faces, NMS, the eye-pair stage, scaling and config errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from maskipy.edge.config import DetectorConfig
from maskipy.edge.detectors import Detection, build_detector, non_max_suppression
from maskipy.edge.detectors.haar import HaarDetector
from maskipy.edge.errors import ConfigError
from maskipy.edge.geometry import iou
from maskipy.edge.preprocess import read_image

# A clear frontal LFW face, the first unmasked image in path order.
CLEAR_FACE = "faces/unmasked/lfw-Alejandro_Toledo_0004.jpg"
# The first MaskedFace-Net properly_masked image in path order (mfn-00000 on) that the default
# frontal cascade misses and the eye-pair stage finds.
MASKED_FACE = "faces/properly_masked/mfn-00012_Mask.jpg"
# The close-up pass of edge/thorough-detector.ini.
CLOSEUP = ("frontalface_default", "frontalface_alt2")
# The Haar detector with its shipped settings (the default detector is the SSD: tests/test_ssd.py).
HAAR = DetectorConfig(type="haar")


@pytest.fixture(autouse=True)
def one_thread():
    """One OpenCV thread: the tests share the machine, and timings stay comparable."""
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(previous)


def _image(shared_data: Path, relative: str) -> np.ndarray:
    return read_image(str(shared_data / relative))


def test_clear_face_is_found_inside_the_frame(shared_data):
    frame = _image(shared_data, CLEAR_FACE)
    detections = build_detector(HAAR).detect(frame)
    assert len(detections) == 1
    x, y, w, h = detections[0].box
    assert x >= 0 and y >= 0 and x + w <= frame.shape[1] and y + h <= frame.shape[0]
    # LFW centres the face; the box must sit on it, not on the background.
    assert abs(x + w / 2 - frame.shape[1] / 2) < w / 2 and w >= 48


def test_nms_merges_overlapping_boxes():
    strong = Detection((100, 100, 80, 80), 12.0, "frontalface_default")
    shifted = Detection((106, 104, 84, 84), 3.0, "frontalface_alt2")
    apart = Detection((300, 100, 80, 80), 5.0, "frontalface_default")
    kept = non_max_suppression([shifted, apart, strong])
    assert kept == [strong, apart]
    assert iou(strong.box, shifted.box) > 0.3


def test_eye_pair_stage_finds_a_masked_face_the_frontal_cascade_misses(shared_data):
    frame = _image(shared_data, MASKED_FACE)
    frontal_only = replace(HAAR, min_neighbors=5, clahe=False, eye_cascades=(),
                           calibrate_boxes=False)
    assert HaarDetector(frontal_only).detect(frame) == []
    config = replace(frontal_only, eye_cascades=("eye",), calibrate_boxes=True)
    detections = HaarDetector(config).detect(frame)
    assert [d.source for d in detections] == ["eyes"]
    x, y, w, h = detections[0].box
    # The MaskedFace-Net face fills the 320 px image: a face-sized box around its middle.
    assert 0.4 * frame.shape[1] <= w <= frame.shape[1]
    assert x <= frame.shape[1] / 2 <= x + w and y <= frame.shape[0] / 2 <= y + h


@pytest.mark.parametrize("key", ["cascades", "eye_cascades"])
def test_bad_cascade_name_says_how_to_fix_it(key):
    config = replace(HAAR, **{key: ("frontalface_defualt",)})
    with pytest.raises(ConfigError, match=r"frontalface_defualt: no such OpenCV cascade.*known: .*"
                                          r"frontalface_default"):
        build_detector(config)


def test_missing_cascade_file_names_the_path():
    config = replace(HAAR, cascades=("/nowhere/face.xml",))
    with pytest.raises(ConfigError, match=r"/nowhere/face\.xml: file not found; give a cascade XML path"):
        build_detector(config)


def test_detect_width_maps_boxes_back_to_full_resolution(shared_data):
    import cv2

    small = _image(shared_data, CLEAR_FACE)
    large = cv2.resize(small, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)
    native = HaarDetector(replace(HAAR, detect_width=0)).detect(small)
    scaled = HaarDetector(replace(HAAR, detect_width=small.shape[1])).detect(large)
    assert len(native) == len(scaled) == 1
    expected = tuple(2 * v for v in native[0].box)
    assert iou(scaled[0].box, expected) > 0.8


def test_border_padding_keeps_boxes_inside_the_frame(shared_data):
    frame = _image(shared_data, CLEAR_FACE)[:, 60:]  # the face now close to the left edge
    config = replace(HAAR, border=0.2, eye_cascades=("eye",), calibrate_boxes=True)
    for detection in HaarDetector(config).detect(frame):
        x, y, w, h = detection.box
        assert x >= 0 and y >= 0 and x + w <= frame.shape[1] and y + h <= frame.shape[0]


def _found_centred(frame: np.ndarray, detections: list[Detection]) -> bool:
    """A face-sized box around the middle: MaskedFace-Net faces fill their image."""
    h, w = frame.shape[:2]
    return any(w / 4 <= x + bw / 2 <= 3 * w / 4 and h / 4 <= y + bh / 2 <= 3 * h / 4 and bw >= 0.3 * w
               for x, y, bw, bh in (d.box for d in detections))


def test_closeup_pass_finds_faces_that_fill_the_frame(shared_data):
    """Faces cut by the frame's edges: the close-up pass finds more of them, boxes inside the frame."""
    paths = sorted((shared_data / "faces" / "improperly_masked").glob("mfn-*.jpg"))[:40]
    frames = [read_image(str(p)) for p in paths]
    without = HaarDetector(replace(HAAR, eye_cascades=()))
    with_closeup = HaarDetector(replace(HAAR, eye_cascades=(), closeup_cascades=CLOSEUP))
    found_without = sum(_found_centred(f, without.detect(f)) for f in frames)
    results = [with_closeup.detect(f) for f in frames]
    found_with = sum(_found_centred(f, d) for f, d in zip(frames, results, strict=True))
    assert found_with > found_without, (found_with, found_without)
    for frame, detections in zip(frames, results, strict=True):
        for x, y, w, h in (d.box for d in detections):
            assert x >= 0 and y >= 0 and x + w <= frame.shape[1] and y + h <= frame.shape[0]


def test_closeup_pass_leaves_small_faces_to_the_main_pass(shared_data):
    """A small face in a large frame is below the close-up pass's size: it adds nothing there."""
    import cv2

    face = _image(shared_data, CLEAR_FACE)
    frame = cv2.copyMakeBorder(face, 300, 300, 400, 400, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    main_only = HaarDetector(HAAR)
    detections = HaarDetector(replace(HAAR, closeup_cascades=CLOSEUP)).detect(frame)
    assert len(detections) == 1 and detections == main_only.detect(frame)
