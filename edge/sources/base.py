"""The frame source interface every camera, video, folder and replay source implements."""

from __future__ import annotations

import numpy as np


class FrameSource:
    """Somewhere frames come from, one BGR uint8 array per :meth:`read`.

    Subclasses override ``_read`` (return a frame, or None when none came this time) and
    ``_close``. A finite source (video file, image folder) sets ``exhausted`` when it has no more
    frames, which ends the run; a camera never does, so a None from it is a stall for the watchdog.
    ``stills`` marks sources whose frames are unrelated photos rather than moments of one scene.
    ``frame_time`` is the last frame's time in a recording's own timeline (seconds from its start),
    so people are tracked in the time the scene took, however fast the file is read; None for live
    sources, whose frames happen now.
    Use it as a context manager, or call :meth:`close` (safe to call twice)::

        with open_source("/dev/video0", config.camera) as source:
            frame = source.read()
    """

    stills = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.exhausted = False
        self.frame_time: float | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def read(self) -> np.ndarray | None:
        """The next frame, or None if none is available (see ``exhausted``)."""
        if self._closed or self.exhausted:
            return None
        return self._read()

    def close(self) -> None:
        """Release the device or file; later calls do nothing."""
        if not self._closed:
            self._closed = True
            self._close()

    def _read(self) -> np.ndarray | None:
        raise NotImplementedError

    def _close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}{' closed' if self._closed else ''}>"
