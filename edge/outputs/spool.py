"""A FIFO of outgoing messages (sqlite3, on disk or in memory): kept until acknowledged, bounded."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def is_damaged(exc: sqlite3.Error) -> bool:
    """A damaged file (not a database, malformed), as opposed to a disk that refuses (full, read-only)."""
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def set_aside(path: Path) -> Path:
    """Rename a damaged spool (and its -wal, -shm) to ``<name>.damaged-<time>``; the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("-wal", "-shm", ""):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.replace(aside.with_name(aside.name + suffix))
    return aside


class Spool:
    """Events waiting for their broker acknowledgement, in the order they were counted.

    ``append`` stores an event and ``commit`` makes it durable (fsync'd: a power cut keeps it);
    ``pending`` reads the oldest ones; ``remove`` forgets acknowledged ones. Past ``max_events``
    the oldest not yet handed out are dropped and counted in ``dropped``, which survives restarts
    like the per-class totals. ``path=None`` keeps it in memory (when the disk refuses); sqlite
    errors reach the caller. One thread owns a Spool::

        spool = Spool("state/mqtt-spool.sqlite3", max_events=100_000)
        seq = spool.append('{"id": "..."}'); spool.commit()
    """

    def __init__(self, path: str | Path | None, *, max_events: int) -> None:
        self.path, self.max_events = (Path(path) if path is not None else None), max_events
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path or ":memory:", isolation_level="DEFERRED",
                                  check_same_thread=False)
        try:
            if self.path is not None:
                self.db.execute("PRAGMA journal_mode=WAL")
                # FULL: every commit is fsync'd, so a counted person survives a power cut.
                self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            self._reload()
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def on_disk(cls, path: Path, *, max_events: int) -> Spool:
        """Open the spool file; a damaged one is set aside (with a warning) and a fresh one made."""
        try:
            spool = cls(path, max_events=max_events)
            check = spool.db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
            check = str(exc)
        else:
            if check == "ok":
                return spool
            spool.db.close()
        aside = set_aside(path)
        log.warning("%s: the MQTT spool is damaged (%s); set aside as %s, starting a new one; the "
                    "events in it are not sent", path, check, aside.name)
        return cls(path, max_events=max_events)

    def _reload(self) -> None:
        self.dropped = self.counter("dropped")
        self._count = self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "memory"

    def append(self, payload: str, *, keep: Collection[int] = ()) -> int:
        """Store one payload (uncommitted); drop the oldest past the bound; its sequence number."""
        seq = self.db.execute("INSERT INTO events (payload) VALUES (?)", (payload,)).lastrowid
        self._count += 1
        excess = self._count - self.max_events
        if excess > 0:
            self._drop_oldest(excess, keep)
        return int(seq)

    def _drop_oldest(self, count: int, keep: Collection[int]) -> None:
        # Events already handed to the MQTT client (``keep``) are its to deliver; drop the others.
        doomed = [seq for seq, _ in self.pending(count, skip=keep)]
        self.db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq in doomed])
        self._count -= len(doomed)
        if doomed:
            self.dropped += len(doomed)
            self.set_counter("dropped", self.dropped)
            log.warning("%s: MQTT queue full (%d events), dropped the oldest %d; %d dropped so far",
                        self.where, self.max_events, len(doomed), self.dropped)

    def pending(self, limit: int, skip: Collection[int] = ()) -> list[tuple[int, str]]:
        """Up to ``limit`` stored (seq, payload), oldest first, leaving out the seqs in ``skip``."""
        rows = self.db.execute("SELECT seq, payload FROM events ORDER BY seq LIMIT ?",
                               (limit + len(skip),)).fetchall()
        return [row for row in rows if row[0] not in skip][:limit]

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget acknowledged events (uncommitted)."""
        removed = self.db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq in seqs])
        self._count -= max(0, removed.rowcount)

    def counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def set_counter(self, name: str, value: int) -> None:
        self.db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

    def dump(self) -> tuple[list[tuple[int, str]], dict[str, int]]:
        """Every committed event (seq, payload) and counter: what moves to another spool."""
        events = self.db.execute("SELECT seq, payload FROM events ORDER BY seq").fetchall()
        return events, dict(self.db.execute("SELECT name, value FROM counters").fetchall())

    def load(self, events: list[tuple[int, str]], counters: dict[str, int], *, replace: bool) -> None:
        """Take over another spool's events (keeping their seqs) and counters, committed.

        ``replace``: the other spool started as a copy of this one (some events since acknowledged),
        so it replaces events and counters. Otherwise it counted from zero: its events come after
        this one's and its counters add up.
        """
        try:
            if replace:
                self.db.execute("DELETE FROM events")
            self.db.executemany("INSERT OR REPLACE INTO events (seq, payload) VALUES (?, ?)", events)
            for name, value in counters.items():
                self.set_counter(name, value if replace else self.counter(name) + value)
            self.db.commit()
        except sqlite3.Error:
            self.rollback()
            raise
        self._reload()

    def last_seq(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM events").fetchone()
        stored = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return max(row[0] or 0, stored[0] if stored else 0)

    def start_after(self, seq: int) -> None:
        """Number new events above ``seq`` (a memory spool standing in for one it cannot read)."""
        # sqlite_sequence has no key: update the row AUTOINCREMENT keeps, or make it.
        if not self.db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'events'", (seq,)).rowcount:
            self.db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (seq,))
        self.db.commit()

    def commit(self) -> None:
        self.db.commit()

    def rollback(self) -> None:
        """Undo the uncommitted changes (a refused commit); counts are read back."""
        with contextlib.suppress(sqlite3.Error):
            self.db.rollback()
            self._reload()

    def close(self) -> None:
        try:
            with contextlib.suppress(sqlite3.Error):
                self.db.commit()
        finally:
            self.db.close()


MEMORY_EVENTS = 10_000  # events kept in memory at most while the disk refuses the spool (~2 MB)
# A memory spool that could not read the disk numbers its events this far above what it saw, so
# they never collide with the disk's when they move back.
UNSEEN_GAP = 1 << 32


def refusal(exc: BaseException, path: Path) -> str:
    """Why the disk refused the spool, in a few words."""
    name, number = getattr(exc, "sqlite_errorname", ""), getattr(exc, "errno", None)
    if name == "SQLITE_FULL" or number == errno.ENOSPC:
        return "state disk full"
    if name == "SQLITE_READONLY" or number in (errno.EROFS, errno.EACCES) or not os.access(
            path.parent if path.parent.exists() else path.parent.parent, os.W_OK):
        return "state dir read-only"
    if is_damaged(exc):
        return f"spool damaged ({exc}), set aside"
    return f"spool unusable ({exc})"


class SpoolKeeper:
    """The spool on disk while the disk takes it, else in memory (bounded); back on disk when it can.

    ``fall_back(exc)`` moves the committed events into memory when the disk refuses a write (full,
    read-only, damaged: set aside); ``retry()`` tries the disk again, first after 1 s, then twice
    as long each time up to ``retry_max`` seconds. ``why`` says why events are in memory (None on
    disk)::

        keeper = SpoolKeeper(Path("state/mqtt-spool.sqlite3"), max_events=100_000, retry_max=60)
        keeper.spool.append("..."); keeper.spool.commit()
    """

    def __init__(self, path: Path, *, max_events: int, retry_max: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.max_events, self.retry_max, self._clock = path, max_events, retry_max, clock
        self.why: str | None = None
        self._delay, self._next, self._mirrors = 1.0, 0.0, False
        try:
            self.spool = Spool.on_disk(path, max_events=max_events)
        except (sqlite3.Error, OSError) as exc:
            self.spool = self._to_memory(None, exc, floor=0)

    def fall_back(self, exc: sqlite3.Error, *, floor: int) -> None:
        """The disk refused: keep going in memory, from what the disk holds if it can still be read."""
        disk = self.spool
        dump, last = None, floor
        with contextlib.suppress(sqlite3.Error):
            disk.rollback()
            dump, last = disk.dump(), disk.last_seq()
        with contextlib.suppress(sqlite3.Error):
            disk.db.close()
        if is_damaged(exc) and disk.path is not None:
            with contextlib.suppress(OSError):
                log.warning("%s: the MQTT spool is damaged (%s); set aside as %s", disk.path, exc,
                            set_aside(disk.path).name)
        self.spool = self._to_memory(dump, exc, floor=max(floor, last))

    def _to_memory(self, dump: tuple[list[tuple[int, str]], dict[str, int]] | None, exc: BaseException,
                   floor: int) -> Spool:
        memory = Spool(None, max_events=min(self.max_events, MEMORY_EVENTS))
        self._mirrors = dump is not None
        if dump is not None:
            events, counters = dump
            cut = max(0, len(events) - memory.max_events)
            counters["dropped"] = counters.get("dropped", 0) + cut
            memory.load(events[cut:], counters, replace=True)
        memory.start_after(floor if self._mirrors else floor + UNSEEN_GAP)
        self.why = refusal(exc, self.path)
        self._delay, self._next = 1.0, self._clock() + 1.0
        log.warning("%s: cannot keep the MQTT spool on disk (%s: %s); keeping up to %d events in "
                    "memory and trying the disk again", self.path, self.why, exc, memory.max_events)
        return memory

    def retry(self) -> bool:
        """Move the spool back to disk if it is in memory, the time has come and the disk takes it."""
        if self.why is None or self._clock() < self._next:
            return False
        disk = None
        try:
            disk = Spool.on_disk(self.path, max_events=self.max_events)
            events, counters = self.spool.dump()
            disk.load(events, counters, replace=self._mirrors)
        except (sqlite3.Error, OSError) as exc:
            if disk is not None:
                disk.db.close()
            self._delay = min(2 * self._delay, max(1.0, self.retry_max))
            self._next = self._clock() + self._delay
            log.debug("%s: the disk still refuses the MQTT spool (%s)", self.path, exc)
            return False
        self.spool.db.close()
        self.spool, self.why = disk, None
        log.warning("%s: the MQTT spool is back on disk with %d events", self.path, len(disk))
        return True

    def close(self) -> None:
        self.spool.close()
