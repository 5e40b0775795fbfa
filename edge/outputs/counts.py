"""The count log: a JSON-lines event per counted person and per-class totals for today."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..tracking import CountEvent, Track
from .base import Output

log = logging.getLogger(__name__)

EVENTS_FILE = "events.jsonl"
TOTALS_FILE = "totals.json"


def rotate(path: Path, keep: int) -> None:
    """``events.jsonl`` -> ``.1`` -> ``.2`` ..., dropping what falls past ``keep``."""
    path.with_name(f"{path.name}.{keep}").unlink(missing_ok=True)
    for index in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))


class CountLog(Output):
    """Appends each counted person to ``<state_dir>/events.jsonl`` and keeps today's totals.

    Totals go to ``totals.json`` every ``flush_seconds`` and at close, written atomically; at
    start today's totals are read back, so a restart does not zero the day. The event log
    rotates past ``rotate_bytes``, keeping ``keep_files`` old logs::

        log = CountLog("state", labels=("properly_masked", "unmasked"))
    """

    name = "log"

    def __init__(self, state_dir: str | Path, *, labels: Iterable[str], flush_seconds: float = 30.0,
                 rotate_bytes: int = 10_000_000, keep_files: int = 5,
                 clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{state_dir}: cannot create the state directory ({exc}); "
                              f"set [counts] state_dir or --state-dir to a writable place") from None
        self.events_path, self.totals_path = self.state_dir / EVENTS_FILE, self.state_dir / TOTALS_FILE
        self.flush_seconds, self.rotate_bytes, self.keep_files = flush_seconds, rotate_bytes, keep_files
        self._clock = clock
        self.day = self._today()
        self.totals = {label: 0 for label in labels}
        self._restore()
        self._last_flush = clock()

    def _today(self) -> str:
        return time.strftime("%Y-%m-%d", time.localtime(self._clock()))

    def _restore(self) -> None:
        try:
            saved = json.loads(self.totals_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("%s: ignoring unreadable totals: %s", self.totals_path, exc)
            return
        if saved.get("date") == self.day:
            for label, count in saved.get("totals", {}).items():
                self.totals[label] = int(count)
            log.info("%s: restored today's totals %s", self.totals_path, self.totals)

    def on_count(self, event: CountEvent) -> None:
        self._roll_day()
        self.totals[event.label] = self.totals.get(event.label, 0) + 1
        if self.events_path.exists() and self.events_path.stat().st_size >= self.rotate_bytes:
            rotate(self.events_path, self.keep_files)
        with open(self.events_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event.to_dict()) + "\n")

    def on_frame(self, tracks: Sequence[Track], frame: np.ndarray) -> None:
        if self._clock() - self._last_flush >= self.flush_seconds:
            self.flush()

    def _roll_day(self) -> None:
        today = self._today()
        if today != self.day:
            self.flush()
            self.day, self.totals = today, dict.fromkeys(self.totals, 0)

    def flush(self) -> None:
        """Write the totals now (atomically: a power cut leaves the old file or the new one)."""
        self._last_flush = self._clock()
        body = {"date": self.day, "updated": self._last_flush, "totals": self.totals}
        tmp = self.totals_path.with_name(self.totals_path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.totals_path)

    def close(self) -> None:
        self.flush()
