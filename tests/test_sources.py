"""Frame sources: image folders, real video files, replay, the factory and the picamera2 error."""

from __future__ import annotations

import logging
import shutil
import sys

import numpy as np
import pytest

from maskipy.edge.config import CameraConfig
from maskipy.edge.errors import CameraError
from maskipy.edge.sources import open_source, source_kind
from maskipy.edge.sources.folder import FolderSource
from maskipy.edge.sources.opencv import OpenCVSource, parse_device
from maskipy.edge.sources.replay import ReplaySource


def drain(source, limit: int = 1000) -> list[np.ndarray]:
    frames = []
    for _ in range(limit):
        frame = source.read()
        if frame is None and source.exhausted:
            break
        if frame is not None:
            frames.append(frame)
    return frames


def test_folder_reads_every_image_recursively_in_order(scenes_dir):
    with FolderSource(scenes_dir) as source:
        frames = drain(source)
        assert source.exhausted and source.stills
    assert len(frames) == 10
    assert all(f.ndim == 3 and f.dtype == np.uint8 for f in frames)


def test_folder_skips_corrupt_image_with_a_warning(tmp_path, scenes_dir, caplog):
    good = sorted(scenes_dir.rglob("*.jpg"))[:2]
    shutil.copy(good[0], tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg at all")
    shutil.copy(good[1], tmp_path / "c.jpg")
    with caplog.at_level(logging.WARNING), FolderSource(tmp_path) as source:
        frames = drain(source)
    assert len(frames) == 2
    assert "b.jpg" in caplog.text


def test_folder_loops_when_asked(tmp_path, scenes_dir):
    shutil.copy(next(scenes_dir.rglob("*.jpg")), tmp_path / "only.jpg")
    source = FolderSource(tmp_path, loop=True)
    assert all(source.read() is not None for _ in range(5))
    assert not source.exhausted


def test_folder_of_only_corrupt_images_ends_even_when_looping(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    source = FolderSource(tmp_path, loop=True)
    assert drain(source) == [] and source.exhausted


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(CameraError, match="no images"):
        FolderSource(tmp_path)
    with pytest.raises(CameraError, match="not found"):
        FolderSource(tmp_path / "missing")


def test_video_file_ends_at_its_last_frame(make_video, scene_frames):
    video = make_video(scene_frames[:4])
    with open_source(str(video), CameraConfig()) as source:
        assert isinstance(source, OpenCVSource) and source.is_file
        frames = drain(source)
    assert len(frames) == 4 and frames[0].shape == (240, 320, 3)


def test_video_file_loops_when_asked(make_video, scene_frames):
    video = make_video(scene_frames[:3])
    with open_source(str(video), CameraConfig(loop=True)) as source:
        assert all(source.read() is not None for _ in range(8))


def test_missing_video_and_bad_device_raise_camera_error(tmp_path):
    with pytest.raises(CameraError, match=r"nope\.mp4: no such file or folder"):
        open_source(str(tmp_path / "nope.mp4"), CameraConfig())
    with pytest.raises(CameraError, match="plugged in"):
        open_source("/dev/video63", CameraConfig())


def test_source_kind_and_device_parsing(tmp_path):
    assert source_kind("picamera2") == "picamera2"
    assert source_kind("0") == source_kind("/dev/video2") == source_kind("rtsp://cam/stream") == "opencv"
    assert source_kind(str(tmp_path)) == "folder"
    assert source_kind(str(tmp_path / "clip.mp4")) == "opencv"
    (tmp_path / "door.jpg").write_bytes(b"x")
    assert source_kind(str(tmp_path / "door.jpg")) == "folder"  # one still: a folder of one
    assert parse_device("/dev/video2") == 2 and parse_device("3") == 3 and parse_device("a.mp4") is None


def test_picamera2_missing_says_install_with_apt(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="python3-picamera2 with apt"):
        open_source("picamera2", CameraConfig())


def test_replay_source_none_is_a_miss_and_close_is_idempotent(replay_source):
    frame = np.zeros((4, 4, 3), np.uint8)
    source = replay_source([frame, None, frame])
    assert source.read() is frame
    assert source.read() is None and not source.exhausted
    assert source.read() is frame
    assert source.read() is None and source.exhausted
    source.close()
    source.close()
    assert source.closed and source.read() is None


def test_replay_source_loops_and_works_as_context_manager():
    frame = np.zeros((4, 4, 3), np.uint8)
    with ReplaySource([frame], loop=True) as source:
        assert [source.read() is frame for _ in range(3)] == [True] * 3
    assert source.closed
