"""Liveness of the source: reopen one that stopped delivering frames, give up to systemd."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import CameraConfig
from ..errors import CameraError
from ..service.heartbeat import Heartbeat
from .base import FrameSource
from .bounded import BoundedCall

log = logging.getLogger(__name__)

class SourceWatchdog:
    """Wraps a source: reads through it, reopens it after ``stall_seconds`` without a frame.

    Every read and open runs on a daemon thread (``BoundedCall``) and ``read()`` returns within
    ``poll_seconds`` whatever the camera does, so the frame loop keeps pinging systemd and
    answering SIGTERM while a wedged capture or a hung stream is given up on and reopened.
    Reopens back off (``backoff`` doubling up to ``max_backoff``) without blocking; once
    ``max_restarts_per_minute`` reopens in a row bring no frame (or that many fall within a
    minute), CameraError ends the run so the process exits non-zero and systemd restarts it.
    Clock and sleep are injectable::

        watchdog = SourceWatchdog(lambda: open_source(spec, config.camera), stall_seconds=10,
                                  max_restarts_per_minute=5, heartbeat=Heartbeat(path))
        frame = watchdog.read()
    """

    def __init__(self, opener: Callable[[], FrameSource], *, stall_seconds: float,
                 max_restarts_per_minute: int, heartbeat: Heartbeat | None = None,
                 backoff: float = 0.5, max_backoff: float = 8.0, idle_sleep: float = 0.01,
                 poll_seconds: float = 0.25, open_timeout: float = 20.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self._opener = opener
        self.stall_seconds = stall_seconds
        self.max_restarts = max_restarts_per_minute
        self.heartbeat = heartbeat
        self._backoff0, self._max_backoff, self._idle_sleep = backoff, max_backoff, idle_sleep
        self._backoff = backoff
        self.poll_seconds, self.open_timeout = poll_seconds, open_timeout
        self._clock, self._sleep = clock, sleep
        self.restarts: deque[float] = deque()
        self.failed_reopens = 0  # reopens in a row that brought no frame
        self._call = BoundedCall()
        self._reopen_at: float | None = None
        self.source: FrameSource | None = self._first_open()
        self.name = self.source.name
        self._last_frame = clock()

    @classmethod
    def for_camera(cls, opener: Callable[[], FrameSource], camera: CameraConfig, heartbeat: Heartbeat,
                   **timing: Any) -> SourceWatchdog:
        """A watchdog with ``[camera]``'s stall and restart limits (``timing``: clock, sleep, ...)."""
        return cls(opener, stall_seconds=camera.stall_seconds,
                   max_restarts_per_minute=camera.max_restarts_per_minute, heartbeat=heartbeat, **timing)

    def _first_open(self) -> FrameSource:
        done, source = self._call.poll(self._opener, self.open_timeout)
        if not done:
            self._call.abandon()
            raise CameraError(f"camera: opening it did not finish within {self.open_timeout:.0f} s; check "
                              f"the camera, the stream URL and the network")
        return source

    @property
    def frame_time(self) -> float | None:
        """The last frame's time in a recording's own timeline (``FrameSource.frame_time``), or None."""
        return None if self.source is None else self.source.frame_time

    @property
    def exhausted(self) -> bool:
        """True when a finite source has delivered its last frame."""
        return self.source is not None and self.source.exhausted

    def read(self) -> np.ndarray | None:
        """A frame, or None (no frame yet, a reopen under way, or the source is exhausted)."""
        if self.source is None:
            self._reopen_step()
            return None
        done, frame = self._call.poll(self.source.read, self.poll_seconds)
        now = self._clock()
        if frame is not None:
            self._last_frame, self._backoff, self.failed_reopens = now, self._backoff0, 0
            if self.heartbeat is not None:
                self.heartbeat.touch(now)
            return frame
        if done and self.exhausted:
            return None
        if now - self._last_frame >= self.stall_seconds:
            self.restart(now)
        elif done:
            self._sleep(self._idle_sleep)
        return None

    def restart(self, now: float) -> None:
        """Drop the source and schedule a reopen after a backoff; CameraError past the restart limit."""
        while self.restarts and now - self.restarts[0] > 60.0:
            self.restarts.popleft()
        if len(self.restarts) >= self.max_restarts or self.failed_reopens >= self.max_restarts:
            raise CameraError(f"{self.name}: no frames after {max(len(self.restarts), self.failed_reopens)} "
                              f"reopens within a minute or in a row; check the camera (exiting so systemd "
                              f"restarts maskipy-edge)")
        self.restarts.append(now)
        self.failed_reopens += 1
        log.warning("%s: no frame for %.1f s, reopening in %.1f s (restart %d this minute)",
                    self.name, now - self._last_frame, self._backoff, len(self.restarts))
        self._drop_source()
        self._reopen_at = now + self._backoff
        self._backoff = min(self._backoff * 2, self._max_backoff)

    def _drop_source(self) -> None:
        source, self.source = self.source, None
        if self._call.abandon(source.close if source is not None else None):
            log.warning("%s: a capture is still blocked; leaving it behind", self.name)

    def _reopen_step(self) -> None:
        """Start or continue the scheduled reopen, never blocking longer than ``poll_seconds``."""
        now = self._clock()
        if not self._call.busy and self._reopen_at is not None and now < self._reopen_at:
            self._sleep(min(self.poll_seconds, self._reopen_at - now))
            return
        self._reopen_at = None
        try:
            done, source = self._call.poll(self._opener, self.poll_seconds)
        except CameraError as exc:
            log.warning("%s: reopen failed: %s", self.name, exc)
            self._last_frame = now - self.stall_seconds  # count it and back off again
            self.restart(now)
            return
        if done:
            self.source, self._last_frame = source, self._clock()
        elif self._clock() - self._last_frame >= self.stall_seconds + self.open_timeout:
            log.warning("%s: reopen did not finish within %.0f s", self.name, self.open_timeout)
            self._call.abandon(lambda: None)
            self.restart(self._clock())

    def close(self) -> None:
        """Close the current source (idempotent); a capture still blocked closes it when it returns."""
        self._drop_source()
        self._call.close()
