"""A source that replays frames from memory: the test double for cameras."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .base import FrameSource


class ReplaySource(FrameSource):
    """Frames from a list (or any iterable), in order.

    A None item is a read that delivered nothing, as a camera hiccup does. With ``loop`` a
    sequence starts again at its end; a generator that blocks makes a camera that hangs::

        source = ReplaySource([frame1, None, frame2], name="replay")
    """

    def __init__(self, frames: Iterable[np.ndarray | None], *, loop: bool = False,
                 name: str = "replay", stills: bool = False) -> None:
        super().__init__(name)
        self._frames = frames
        self._iter = iter(frames)
        self.loop = loop and isinstance(frames, Sequence) and len(frames) > 0
        self.stills = stills
        self.reads = 0

    def _read(self) -> np.ndarray | None:
        self.reads += 1
        try:
            return next(self._iter)
        except StopIteration:
            if not self.loop:
                self.exhausted = True
                return None
        self._iter = iter(self._frames)
        return next(self._iter)
