"""Shared fixtures: a fresh gpiozero MockFactory per test, replay sources, the shared data, a model bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from maskipy.edge.bundle import DEFAULT_BUNDLE, MODEL_FILE

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def mock_factory():
    """A fresh MockFactory (PWM-capable pins) as gpiozero's default, restored after the test."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    previous = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, the project's read-only face data (skips when this checkout lacks it)."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"{path} not found: the shared data sits beside the repository")
    return path


@pytest.fixture
def scenes_dir(shared_data: Path) -> Path:
    """Ten real uncropped photos in three subfolders."""
    path = shared_data / "scenes"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture
def scene_frames(scenes_dir: Path) -> list[np.ndarray]:
    """The scene photos as BGR frames, in path order."""
    from maskipy.edge.preprocess import read_image
    from maskipy.edge.sources.folder import list_images

    return [read_image(str(p)) for p in list_images(scenes_dir)]


@pytest.fixture
def make_video(tmp_path):
    """Write a real MJPG .avi: ``make_video(frames, name="clip.avi", size=(320, 240)) -> Path``."""
    import cv2

    def make(frames, name: str = "clip.avi", size: tuple[int, int] = (320, 240)) -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
        assert writer.isOpened()
        for frame in frames:
            writer.write(cv2.resize(frame, size))
        writer.release()
        return path

    return make


@pytest.fixture
def replay_source():
    """Make ReplaySources that are closed after the test: ``replay_source(frames, loop=False)``."""
    from maskipy.edge.sources.replay import ReplaySource

    made: list[ReplaySource] = []

    def make(frames, **kwargs) -> ReplaySource:
        source = ReplaySource(frames, **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


@pytest.fixture
def bundle_dir() -> Path:
    """A model bundle for runtime tests: the bundled default, skipped while it is not built yet."""
    if not (DEFAULT_BUNDLE / MODEL_FILE).is_file():
        pytest.skip(f"{DEFAULT_BUNDLE / MODEL_FILE} not built yet")
    return DEFAULT_BUNDLE
