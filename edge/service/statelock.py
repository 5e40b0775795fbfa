"""One gate per state directory: an fcntl lock held for the life of ``maskipy-edge run``."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from ..errors import StateLockError

log = logging.getLogger(__name__)

LOCK_FILE = "maskipy-edge.lock"


class StateLock:
    """An exclusive, non-blocking flock on ``<state_dir>/maskipy-edge.lock``.

    Two gates on one state directory would both append events and overwrite each other's
    totals; the second one gets a clear error instead. The kernel drops the lock when the
    process dies, however it dies, so there is never a stale lock to clean up::

        with StateLock(config.counts.state_dir):
            runtime.run()
    """

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            try:  # a full or read-only disk: an existing lock file still locks, read-only
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                if self.path.parent.is_dir():
                    # Nothing can be written there, by this gate or a second one: run, counting in memory.
                    log.warning("%s: cannot create the lock file (%s); running unlocked", self.path, exc)
                    return self
                raise StateLockError(f"{self.path}: cannot create the lock file ({exc}); set [counts] "
                                  f"state_dir or --state-dir to a writable place") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StateLockError(f"{self.path.parent}: another maskipy-edge run (pid {holder}) already uses "
                              f"this state directory; stop it (sudo systemctl stop maskipy-edge) or "
                              f"give this one its own --state-dir") from None
        try:  # who holds it, for the second gate's message; a full disk only loses that hint
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
