"""Picamera2Source against a thin stand-in for picamera2's ``Picamera2`` (the hardware boundary: the real
one needs libcamera and a camera), and the errors a Pi really shows: no picamera2, numpy ABI mismatch."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from maskipy.edge.config import CameraConfig
from maskipy.edge.errors import CameraError
from maskipy.edge.sources import open_source
from maskipy.edge.sources.picamera2 import Picamera2Source


class FakePicamera2:
    """Records what the source asks of the camera; capture_array gives numbered BGR frames."""

    made: ClassVar[list[FakePicamera2]] = []
    fail_start: ClassVar[Exception | None] = None
    fail_capture: ClassVar[Exception | None] = None

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config: dict | None = None
        self.frames = 0
        FakePicamera2.made.append(self)

    def create_video_configuration(self, main: dict, controls: dict) -> dict:
        return {"main": main, "controls": controls}

    def configure(self, config: dict) -> None:
        self.config = config
        self.calls.append("configure")

    def start(self) -> None:
        if self.fail_start is not None:
            raise self.fail_start
        self.calls.append("start")

    def capture_array(self, stream: str) -> np.ndarray:
        if self.fail_capture is not None:
            raise self.fail_capture
        width, height = self.config["main"]["size"]
        self.frames += 1
        return np.full((height, width, 3), self.frames, np.uint8)

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def fake_camera(monkeypatch) -> type[FakePicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.made = []
    FakePicamera2.fail_start = FakePicamera2.fail_capture = None
    return FakePicamera2


def test_configures_bgr_at_the_size_and_frame_rate_asked(fake_camera) -> None:
    source = Picamera2Source(width=320, height=240, fps=20, camera=1)
    camera = fake_camera.made[0]
    assert camera.camera_num == 1 and camera.calls == ["configure", "start"]
    # RGB888 is BGR in memory: what OpenCV and the crops expect.
    assert camera.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert camera.config["controls"]["FrameDurationLimits"] == (50_000, 50_000)
    first, second = source.read(), source.read()
    assert first.shape == (240, 320, 3) and first[0, 0, 0] == 1 and second[0, 0, 0] == 2
    source.close()
    source.close()
    assert camera.calls == ["configure", "start", "stop", "close"]


def test_the_factory_opens_it_from_the_config(fake_camera) -> None:
    source = open_source("picamera2", CameraConfig(width=160, height=120))
    try:
        assert source.read().shape == (120, 160, 3)
    finally:
        source.close()


def test_a_camera_that_will_not_start_names_the_checks(fake_camera) -> None:
    fake_camera.fail_start = RuntimeError("Camera __init__ sequence did not complete")
    with pytest.raises(CameraError, match=r"ribbon cable .* rpicam-hello --list-cameras"):
        Picamera2Source()


def test_a_failed_capture_is_a_missed_frame_not_a_crash(fake_camera) -> None:
    source = Picamera2Source()
    fake_camera.fail_capture = RuntimeError("dequeue timeout")
    try:
        assert source.read() is None and not source.exhausted
        fake_camera.fail_capture = None
        assert source.read() is not None
    finally:
        source.close()


def test_numpy_abi_mismatch_says_keep_apts_numpy(tmp_path: Path, monkeypatch) -> None:
    """What apt's picamera2 does under pip's numpy 2: simplejpeg raises ValueError, not ImportError."""
    package = tmp_path / "picamera2"
    package.mkdir()
    (package / "__init__.py").write_text(
        'raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. '
        'Expected 96 from C header, got 88 from PyObject")\n')
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CameraError, match="keep apt's numpy") as caught:
        open_source("picamera2", CameraConfig())
    assert "numpy.dtype size changed" in str(caught.value)
