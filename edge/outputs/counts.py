"""The count log: a JSON-lines event per counted person and per-day totals, both durable per count."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..tracking import CountEvent, Track
from .base import Output
from .totals import day_of, read_totals, write_totals

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


def append_line(path: Path, line: str) -> None:
    """Append one full line with a single write, synced; a failed write is cut back, never left half."""
    data = line.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write", str(path))
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def repair_tail(path: Path) -> None:
    """Cut a last line a power cut left half-written, so the next append starts on its own line."""
    try:
        with open(path, "rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(max(0, size - 65536))
            tail = handle.read()
            if tail.endswith(b"\n"):
                return
            keep = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
            handle.truncate(keep)
            log.warning("%s: cut a half-written last line (%d bytes)", path, size - keep)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("%s: cannot check the last line: %s", path, exc)


def read_events(paths: Iterable[Path]) -> Iterator[dict]:
    """Event dicts from JSON-lines files, oldest file first; unparseable lines are skipped."""
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        yield from _parse_events(lines)


def read_recent_events(path: Path, tail_bytes: int = 1_000_000) -> list[dict]:
    """The events in the last ``tail_bytes`` of one log (what the status page restores at start),
    each with a float ``time``; lines that do not parse are skipped."""
    try:
        with open(path, "rb") as handle:
            start = max(0, handle.seek(0, os.SEEK_END) - tail_bytes)
            handle.seek(start)
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("%s: cannot read recent events: %s", path, exc)
        return []
    if start > 0:
        lines = lines[1:]  # cut in the middle
    events = []
    for event in _parse_events(lines):
        try:
            events.append({**event, "time": float(event["time"])})
        except (KeyError, TypeError, ValueError):
            continue
    return events


def _parse_events(lines: Iterable[str]) -> Iterator[dict]:
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and isinstance(event.get("label"), str):
            yield event


class CountLog(Output):
    """Appends each counted person to ``<state_dir>/events.jsonl`` and keeps per-day totals.

    Every count is appended (one write, fsync) and the totals rewritten atomically before
    ``on_count`` returns, so a SIGKILL or a power cut loses nobody; at start, events logged after
    the last saved total are added back. When the disk is full or read-only, counting goes on in
    memory: ``degraded`` says why (the runtime shows it in systemd's STATUS=), the journal says so
    once, and the writes are retried at the next count and every ``flush_seconds``::

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
        self.labels = tuple(labels)
        self._clock = clock
        self.days: dict[str, dict[str, int]] = {}
        self.through: str | None = None
        self.degraded: str | None = None
        self._pending: list[str] = []
        self._totals_dirty = False
        repair_tail(self.events_path)
        self._restore()
        self._last_flush = clock()

    @property
    def day(self) -> str:
        return day_of(self._clock())

    @property
    def totals(self) -> dict[str, int]:
        """Today's counts per label (every configured label, zero when nobody was counted)."""
        return {**dict.fromkeys(self.labels, 0), **self.days.get(self.day, {})}

    def _log_files(self, through: str | None) -> list[Path]:
        """The event logs, oldest first, starting at the newest one holding event ``through``."""
        rotated = [self.events_path.with_name(f"{EVENTS_FILE}.{i}") for i in range(self.keep_files, 0, -1)]
        files = [p for p in (*rotated, self.events_path) if p.is_file()]
        if through is not None:
            for index in range(len(files) - 1, -1, -1):
                try:
                    if through.encode() in files[index].read_bytes():
                        return files[index:]
                except OSError:
                    continue
        return files

    def _restore(self) -> None:
        saved = read_totals(self.totals_path)
        days, through = saved if saved is not None else ({}, None)
        missed = 0
        if saved is None or through is not None:
            # Events after the last one the totals include: a kill between the two writes, or no totals.
            found = through is None
            for event in read_events(self._log_files(through)):
                if not found:
                    found = event.get("id") == through
                    continue
                try:
                    day = day_of(float(event.get("time")))
                except (TypeError, ValueError, OverflowError, OSError):
                    day = self.day
                days.setdefault(day, dict.fromkeys(self.labels, 0))
                days[day][event["label"]] = days[day].get(event["label"], 0) + 1
                self.through, missed = event.get("id"), missed + 1
            if not found:
                log.warning("%s: the last counted event %s is not in the event log; keeping the saved "
                            "totals as they are", self.totals_path, through)
        self.days, self.through = days, self.through or through
        if missed:
            self._totals_dirty = True
            log.warning("%s: added %d counted people the saved totals missed", self.totals_path, missed)
            self._sync()
        if self.days.get(self.day):
            log.info("%s: restored today's totals %s", self.totals_path, self.totals)

    def on_count(self, event: CountEvent) -> None:
        day = day_of(event.time)
        counts = self.days.setdefault(day, dict.fromkeys(self.labels, 0))
        counts[event.label] = counts.get(event.label, 0) + 1
        self._pending.append(json.dumps(event.to_dict()) + "\n")
        self.through, self._totals_dirty = event.id, True
        self._sync()

    def on_frame(self, tracks: Sequence[Track], frame: np.ndarray) -> None:
        if self._clock() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the totals and whatever is not on disk yet (a retry after a full or read-only disk)."""
        self._last_flush, self._totals_dirty = self._clock(), True
        self._sync()

    def _sync(self) -> None:
        try:
            while self._pending:
                if self.events_path.exists() and self.events_path.stat().st_size >= self.rotate_bytes:
                    rotate(self.events_path, self.keep_files)
                append_line(self.events_path, self._pending[0])
                self._pending.pop(0)
            if self._totals_dirty:
                today = (self.day, self.totals)
                write_totals(self.totals_path, self.days, today, self.through, self._clock())
                self._totals_dirty = False
        except OSError as exc:
            if self.degraded is None:
                log.warning("%s: cannot save counts (%s); counting in memory and retrying every %.0f s",
                            self.state_dir, exc, self.flush_seconds)
            self.degraded = f"counts not saved ({exc.strerror or exc})"
            return
        if self.degraded is not None:
            log.warning("%s: counts saved again; the gate's count log is back to normal", self.state_dir)
            self.degraded = None

    def close(self) -> None:
        self.flush()
        if self.degraded is not None:
            log.error("%s: exiting with %d counted people not saved: %s", self.state_dir,
                      len(self._pending), self.degraded)
