"""The frame loop's heartbeat file, whose mtime says the loop is alive (for probes outside the process)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

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
        self.failing = False

    def touch(self, now: float) -> bool:
        """Update the file unless it was updated less than ``interval`` ago; True if written."""
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{time.time():.3f}\n", encoding="utf-8")
        except OSError as exc:
            if not self.failing:  # once, not every second of a full disk
                log.warning("heartbeat: cannot write %s: %s", self.path, exc)
            self.failing = True
            return True
        if self.failing:
            log.warning("heartbeat: %s written again", self.path)
            self.failing = False
        return True


def heartbeat_path(state_dir: Path) -> Path:
    """Where the frame loop's heartbeat lives under the state directory."""
    return Path(os.fspath(state_dir)) / HEARTBEAT_FILE
