"""Shared fixtures: a fresh gpiozero MockFactory per test, replay sources, the shared data, a model bundle."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

# In CI (CI set) a skip outside tests/hardware/ is a failure: CI cannot pass without its tests.
from ci_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

from maskipy.edge.bundle import DEFAULT_BUNDLE, MODEL_FILE

# The MQTT tests' broker and recorder fixtures.
pytest_plugins = ("mqtt_broker",)

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MASKIPY_SHARED", REPO.parent / "shared"))
# Without the data a third of the suite cannot run; skipping it would let CI pass on nothing.
ALLOW_MISSING_SHARED = "MASKIPY_ALLOW_MISSING_SHARED"


def missing_shared(path: Path) -> NoReturn:
    """Fail the test (skip it only when MASKIPY_ALLOW_MISSING_SHARED=1 says so on purpose; in CI that skip
    fails too, see ci_policy.py)."""
    message = (f"{path} not found: the shared data sits beside the repository (../shared); "
               f"set {ALLOW_MISSING_SHARED}=1 to skip the tests that need it on purpose")
    if os.environ.get(ALLOW_MISSING_SHARED) == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, the project's read-only face data (its absence fails the test)."""
    path = SHARED / "data"
    if not path.is_dir():
        missing_shared(path)
    return path


@pytest.fixture(scope="session")
def scenes_dir(shared_data: Path) -> Path:
    """Ten real uncropped photos in three subfolders."""
    path = shared_data / "scenes"
    if not path.is_dir():
        missing_shared(path)
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


TINY_LABELS = ("properly_masked", "improperly_masked", "unmasked", "not_face")


def tiny_train_config(shared: Path, work: Path, **changes):
    """A small but real training run: real face crops, the offline ImageNet MobileNetV2 at 64 px
    (an untrained backbone answers a constant 1/4 each), a few epochs of head training."""
    import dataclasses

    from maskipy.trainer.config import TrainConfig

    config = TrainConfig(
        data_dir=shared / "data", manifest=shared / "data" / "manifest.csv",
        sources=("realworld-photos", "realworld-video"), train_only_sources=("realworld-video",),
        labels=TINY_LABELS, max_per_source_label=30, input_size=64,
        weights=str(shared / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
        views=1, epochs=15, batch_size=32, val_fraction=0.2, test_fraction=0.2,
        output_dir=work / "model", cache_dir=work / "cache")
    return dataclasses.replace(config, **changes)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """An int8 bundle made by the real trainer and converter on real crops (about 20 s, once)."""
    if not (SHARED / "data" / "manifest.csv").is_file():
        missing_shared(SHARED / "data" / "manifest.csv")
    from maskipy.converters.cli import build_bundle
    from maskipy.converters.config import ConvertConfig
    from maskipy.edge.config import DetectorConfig
    from maskipy.trainer.train import train

    work = tmp_path_factory.mktemp("tiny-bundle")
    config = tiny_train_config(SHARED, work)
    detector = DetectorConfig()
    result = train(config, detector)
    # Parity thresholds are the converter's job to enforce on real models; a 30-image model is
    # too noisy for them, so this fixture only needs the bundle.
    convert = ConvertConfig(output_dir=work / "bundle", min_agreement=0.0, max_accuracy_drop=1.0,
                            representative_samples=40)
    build_bundle(config, detector, convert, result.model_path)
    return work / "bundle"


@pytest.fixture
def tiny_training(tiny_bundle: Path) -> Path:
    """The output folder of the training run behind ``tiny_bundle`` (model, metadata, report)."""
    return tiny_bundle.parent / "model"


@pytest.fixture
def bundle_dir(tiny_bundle: Path) -> Path:
    """A model bundle for runtime tests (the tiny, really trained one)."""
    return tiny_bundle


@pytest.fixture
def default_bundle() -> Path:
    """The bundled default model the README's run command uses."""
    if not (DEFAULT_BUNDLE / MODEL_FILE).is_file():
        pytest.skip(f"{DEFAULT_BUNDLE / MODEL_FILE} not built: make default-model")
    return DEFAULT_BUNDLE


def wait_for(condition, timeout: float = 20.0, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


class Tmpfs:
    """A small tmpfs mounted at ``path``; ``fill()`` uses up its space, ``readonly(flag)`` remounts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
            except OSError:
                pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def readonly(self, flag: bool) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if flag else 'rw'}", str(self.path)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 64 KiB tmpfs (a ``Tmpfs``), or None where the sandbox cannot mount (no CAP_SYS_ADMIN)."""
    path = tmp_path / "small"
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                            capture_output=True)
    if result.returncode != 0:
        yield None
        return
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
