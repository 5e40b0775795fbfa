"""The live preview: the newest frame handed from the frame loop to an encoder thread, JPEGs to watchers."""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from ..outputs.annotate import draw_tracks
from ..tracking import Track

log = logging.getLogger(__name__)

JPEG_QUALITY = 75


def encode_preview(frame: np.ndarray, tracks: Sequence[Track], width: int) -> bytes:
    """A JPEG of ``frame`` scaled down to at most ``width`` pixels, with boxes and labels drawn."""
    import cv2

    scale = min(1.0, width / frame.shape[1])
    if scale < 1.0:
        size = (int(round(frame.shape[1] * scale)), int(round(frame.shape[0] * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        tracks = [dataclasses.replace(t, box=tuple(int(round(v * scale)) for v in t.box)) for t in tracks]
    ok, data = cv2.imencode(".jpg", draw_tracks(frame, tracks), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding of a preview frame failed")
    return data.tobytes()


class PreviewFeed:
    """Frames for /stream.mjpg and /snapshot.jpg, without slowing the frame loop.

    ``offer()`` (the frame loop, every frame) returns at once unless someone watches; then, at most
    ``fps`` times a second, it hands over the frame and a copy of the tracks, nothing more. A daemon
    thread draws, scales and encodes the newest frame handed over (older ones are skipped); watchers
    wait on ``next_jpeg``. Nothing is written to disk::

        feed = PreviewFeed(fps=5, width=640)
        with feed.watch():
            sequence, jpeg = feed.next_jpeg(after=0, timeout=2)
    """

    def __init__(self, fps: float = 5.0, width: int = 640, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.width = 1.0 / fps, width
        self._clock = clock
        self._watchers = 0
        self._watchers_lock = threading.Lock()
        self._pending: tuple[np.ndarray, list[Track]] | None = None
        self._handoff = threading.Condition()
        self._published = threading.Condition()
        self.jpeg: bytes | None = None
        self.sequence = 0
        self.encoded = 0
        self._last_offer = float("-inf")
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._encode_loop, name="maskipy-preview", daemon=True)
        self._thread.start()

    @property
    def watchers(self) -> int:
        return self._watchers

    def offer(self, tracks: Sequence[Track], frame: np.ndarray) -> bool:
        """Hand the frame to the encoder if someone watches and the rate allows; True if handed over."""
        if not self._watchers:
            return False
        now = self._clock()
        if now - self._last_offer < self.interval:
            return False
        self._last_offer = now
        # Tracks change under the tracker's hands; the encoder gets this frame's state.
        item = (frame, [copy.copy(t) for t in tracks])
        with self._handoff:
            self._pending = item
            self._handoff.notify()
        return True

    def _encode_loop(self) -> None:
        while not self._stopped.is_set():
            with self._handoff:
                self._handoff.wait_for(lambda: self._pending is not None or self._stopped.is_set(), 1.0)
                item, self._pending = self._pending, None
            if item is None:
                continue
            try:
                jpeg = encode_preview(item[0], item[1], self.width)
            except Exception as exc:  # a bad frame must not end the preview for good
                log.warning("preview: cannot encode a frame: %s", exc)
                continue
            with self._published:
                self.jpeg, self.sequence, self.encoded = jpeg, self.sequence + 1, self.encoded + 1
                self._published.notify_all()

    @contextmanager
    def watch(self) -> Iterator[None]:
        """While inside, the frame loop hands frames over (one per stream client or snapshot)."""
        with self._watchers_lock:
            self._watchers += 1
        try:
            yield
        finally:
            with self._watchers_lock:
                self._watchers -= 1

    def next_jpeg(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The first JPEG newer than sequence number ``after``, or None after ``timeout`` seconds."""
        with self._published:
            self._published.wait_for(lambda: self.sequence > after or self._stopped.is_set(), timeout)
            if self.sequence > after and self.jpeg is not None:
                return self.sequence, self.jpeg
        return None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def close(self) -> None:
        """Stop the encoder thread and wake every watcher; idempotent."""
        self._stopped.set()
        with self._handoff:
            self._handoff.notify_all()
        with self._published:
            self._published.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
