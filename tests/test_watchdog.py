"""The source watchdog: reopen after a stall with backoff, give up past the per-minute limit, heartbeat."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from maskipy.edge.errors import CameraError
from maskipy.edge.service.heartbeat import Heartbeat
from maskipy.edge.sources.replay import ReplaySource
from maskipy.edge.sources.watchdog import SourceWatchdog

FRAME = np.zeros((8, 8, 3), np.uint8)


class FakeClock:
    """Time that only moves when told to (sleep moves it too), so stalls are deterministic."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_watchdog(opened, frames_per_open, clock, **kwargs):
    def opener():
        source = ReplaySource(list(frames_per_open(len(opened))), name=f"cam{len(opened)}")
        source.opened_at = clock.now
        opened.append(source)
        return source

    options = {"stall_seconds": 5.0, "max_restarts_per_minute": 3, "backoff": 0.5, "max_backoff": 2.0}
    options.update(kwargs)
    return SourceWatchdog(opener, clock=clock, sleep=clock.sleep, **options)


def test_stalled_source_is_reopened_and_frames_flow_again():
    clock, opened = FakeClock(), []
    # First open: one frame, then only misses; second open: frames again.
    watchdog = make_watchdog(opened, lambda n: [FRAME] + [None] * 50 if n == 0 else [FRAME] * 5, clock)
    assert watchdog.read() is FRAME
    for _ in range(50):
        clock.now += 1.0
        if watchdog.read() is not None:
            break
        if len(opened) == 2:
            break
    assert len(opened) == 2 and opened[0].closed
    assert watchdog.read() is FRAME
    assert opened[1].opened_at - opened[0].opened_at == pytest.approx(5.0 + 0.5, abs=1.0)


def test_backoff_doubles_and_too_many_restarts_raise_camera_error():
    clock, opened = FakeClock(), []
    watchdog = make_watchdog(opened, lambda n: [None] * 100, clock, stall_seconds=1.0)
    with pytest.raises(CameraError, match="reopens within a minute"):
        for _ in range(100):
            clock.now += 0.1
            watchdog.read()
    gaps = [b.opened_at - a.opened_at for a, b in itertools.pairwise(opened)]
    # Each reopen waits a second of stall plus the backoff, which doubles: 0.5, 1, 2.
    assert [g - 1.0 for g in gaps] == pytest.approx([0.5, 1.0, 2.0], abs=0.3)
    assert len(opened) == 4  # the first open and three reopens


def test_restarts_older_than_a_minute_are_forgotten():
    clock, opened = FakeClock(), []
    watchdog = make_watchdog(opened, lambda n: [None] * 100, clock, stall_seconds=1.0,
                             max_restarts_per_minute=2)
    for _ in range(2):
        clock.now += 1.0
        watchdog.read()
    clock.now += 120.0
    watchdog.read()  # stalled again, but the earlier restarts are over a minute old
    assert len(watchdog.restarts) == 1


def test_finite_source_end_is_not_a_stall():
    clock, opened = FakeClock(), []
    watchdog = make_watchdog(opened, lambda n: [FRAME], clock)
    assert watchdog.read() is FRAME
    clock.now += 100.0
    assert watchdog.read() is None and watchdog.exhausted
    assert len(opened) == 1


def test_heartbeat_is_touched_from_frames_and_rate_limited(tmp_path):
    clock, opened = FakeClock(), []
    beat = Heartbeat(tmp_path / "state" / "heartbeat", interval=1.0)
    watchdog = make_watchdog(opened, lambda n: [FRAME] * 10, clock, heartbeat=beat)
    watchdog.read()
    assert beat.path.is_file()
    assert not beat.touch(clock.now + 0.5)
    assert beat.touch(clock.now + 1.5)
