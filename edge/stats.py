"""Where the frame loop's time goes: seconds per pipeline stage, read by the status page and bench/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STAGES = ("capture", "detect", "preprocess", "classify", "track_outputs")


class StageTimer:
    """Seconds spent per pipeline stage, summed over a run; ``as_dict()`` is what bench/ reads."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.frames = 0
        self.inferred_frames = 0
        self.faces = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def as_dict(self) -> dict[str, Any]:
        """``frames``, ``inferred_frames``, ``faces``, ``seconds`` and ``ms_per_frame`` per stage."""
        per_frame = {k: 1000.0 * v / self.frames if self.frames else 0.0 for k, v in self.seconds.items()}
        return {"frames": self.frames, "inferred_frames": self.inferred_frames, "faces": self.faces,
                "seconds": dict(self.seconds), "ms_per_frame": per_frame}
