"""Liveness: reopen a source that stopped delivering frames, give up to systemd, touch a heartbeat."""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import CameraError
from .sources.base import FrameSource

log = logging.getLogger(__name__)

HEARTBEAT_FILE = "heartbeat"


class Heartbeat:
    """A file whose mtime says the frame loop is alive, touched at most every ``interval`` seconds.

    Rate-limited because the Pi's state directory is usually on an SD card::

        beat = Heartbeat(state_dir / "heartbeat"); beat.touch(time.monotonic())
    """

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = Path(path)
        self.interval = interval
        self._last: float | None = None

    def touch(self, now: float) -> bool:
        """Update the file unless it was updated less than ``interval`` ago; True if written."""
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{time.time():.3f}\n", encoding="utf-8")
        except OSError as exc:
            log.warning("heartbeat: cannot write %s: %s", self.path, exc)
        return True


class SourceWatchdog:
    """Wraps a source: reads through it, reopens it after ``stall_seconds`` without a frame.

    Reopens back off (``backoff`` doubling up to ``max_backoff``); more than
    ``max_restarts_per_minute`` reopens raise CameraError so the process exits non-zero and systemd
    restarts it. A read that blocks forever cannot be seen from here: systemd's WatchdogSec covers
    that, since WATCHDOG=1 is only sent from the frame loop. Clock and sleep are injectable::

        watchdog = SourceWatchdog(lambda: open_source(spec, config.camera), stall_seconds=10,
                                  max_restarts_per_minute=5, heartbeat=Heartbeat(path))
        frame = watchdog.read()
    """

    def __init__(self, opener: Callable[[], FrameSource], *, stall_seconds: float,
                 max_restarts_per_minute: int, heartbeat: Heartbeat | None = None,
                 backoff: float = 0.5, max_backoff: float = 8.0, idle_sleep: float = 0.01,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._opener = opener
        self.stall_seconds = stall_seconds
        self.max_restarts = max_restarts_per_minute
        self.heartbeat = heartbeat
        self._backoff0, self._max_backoff, self._idle_sleep = backoff, max_backoff, idle_sleep
        self._backoff = backoff
        self._clock, self._sleep = clock, sleep
        self.restarts: deque[float] = deque()
        self.source: FrameSource | None = opener()
        self.name = self.source.name
        self._last_frame = clock()

    @property
    def exhausted(self) -> bool:
        """True when a finite source has delivered its last frame."""
        return self.source is not None and self.source.exhausted

    def read(self) -> np.ndarray | None:
        """A frame, or None (no frame yet, or the source is exhausted)."""
        frame = self.source.read() if self.source is not None else None
        now = self._clock()
        if frame is not None:
            self._last_frame = now
            self._backoff = self._backoff0
            if self.heartbeat is not None:
                self.heartbeat.touch(now)
            return frame
        if self.exhausted:
            return None
        if self.source is None or now - self._last_frame >= self.stall_seconds:
            self.restart(now)
        else:
            self._sleep(self._idle_sleep)
        return None

    def restart(self, now: float) -> None:
        """Close and reopen the source after a backoff; CameraError past the per-minute limit."""
        while self.restarts and now - self.restarts[0] > 60.0:
            self.restarts.popleft()
        if len(self.restarts) >= self.max_restarts:
            raise CameraError(f"{self.name}: no frames after {len(self.restarts)} reopens within a "
                              f"minute; check the camera (exiting so systemd restarts maskipy-edge)")
        self.restarts.append(now)
        log.warning("%s: no frame for %.1f s, reopening in %.1f s (restart %d this minute)",
                    self.name, now - self._last_frame, self._backoff, len(self.restarts))
        if self.source is not None:
            self.source.close()
            self.source = None
        self._sleep(self._backoff)
        self._backoff = min(self._backoff * 2, self._max_backoff)
        try:
            self.source = self._opener()
        except CameraError as exc:
            log.warning("%s: reopen failed: %s", self.name, exc)
        self._last_frame = self._clock()

    def close(self) -> None:
        """Close the current source (idempotent)."""
        if self.source is not None:
            self.source.close()


def heartbeat_path(state_dir: Path) -> Path:
    """Where the frame loop's heartbeat lives under the state directory."""
    return Path(os.fspath(state_dir)) / HEARTBEAT_FILE
