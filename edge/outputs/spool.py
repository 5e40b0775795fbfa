"""An on-disk FIFO of outgoing messages (sqlite3): kept until acknowledged, bounded, oldest dropped."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..errors import OutputError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Spool:
    """Events waiting for their broker acknowledgement, in the order they were counted.

    ``append`` stores an event and ``commit`` makes it durable (fsync'd: a power cut keeps it);
    ``pending`` reads the oldest ones after a sequence number; ``remove`` forgets acknowledged ones.
    Past ``max_events`` the oldest not yet handed out (``keep_after``) are dropped and counted in
    ``dropped``, which survives restarts like the per-class ``totals``. One thread owns a Spool::

        spool = Spool("state/mqtt-spool.sqlite3", max_events=100_000)
        seq = spool.append('{"id": "..."}'); spool.commit()
    """

    def __init__(self, path: str | Path, *, max_events: int) -> None:
        self.path, self.max_events = Path(path), max_events
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level="DEFERRED", check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: every commit is fsync'd, so a counted person survives a power cut.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise OutputError(f"{self.path}: cannot open the MQTT spool ({exc}); set [counts] state_dir "
                              f"to a writable place, or delete a damaged spool file") from None
        self.dropped = self.counter("dropped")
        self._count = self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def append(self, payload: str, *, keep_after: int = 0) -> int:
        """Store one payload (uncommitted); drop the oldest past the bound; its sequence number."""
        seq = self.db.execute("INSERT INTO events (payload) VALUES (?)", (payload,)).lastrowid
        self._count += 1
        excess = self._count - self.max_events
        if excess > 0:
            self._drop_oldest(excess, keep_after)
        return int(seq)

    def _drop_oldest(self, count: int, keep_after: int) -> None:
        # Events already handed to the MQTT client (seq <= keep_after) are its to deliver; drop newer ones.
        dropped = self.db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?)",
            (keep_after, count)).rowcount
        self._count -= dropped
        if dropped:
            self.dropped += dropped
            self.set_counter("dropped", self.dropped)
            log.warning("%s: MQTT queue full (%d events), dropped the oldest %d; %d dropped so far",
                        self.path, self.max_events, dropped, self.dropped)

    def pending(self, after: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` stored (seq, payload) with seq > ``after``, oldest first."""
        return self.db.execute("SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                               (after, limit)).fetchall()

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

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        try:
            self.db.commit()
        finally:
            self.db.close()
