"""Blocking camera calls run on a daemon thread, so the frame loop waits for them only so long."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any


class _Job:
    """One call handed to the worker: its function, its result or error, and whether it is done."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.cleanup: Callable[[], Any] | None = None  # set when abandoned; runs after ``fn`` returns
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # handed to the caller of poll()
            self.error = exc
        with self.lock:
            self.done.set()
            cleanup = self.cleanup
        if cleanup is not None:
            # Nobody is left to tell of a failure; the source is being dropped anyway.
            with contextlib.suppress(Exception):
                cleanup()


def _work(jobs: queue.SimpleQueue) -> None:
    while (job := jobs.get()) is not None:
        job.run()


class BoundedCall:
    """One blocking call at a time (a capture, an open) on a daemon worker thread.

    ``poll(fn, timeout)`` starts ``fn`` unless a call is already in flight, then waits at most
    ``timeout`` seconds: (True, result) when it finished, (False, None) while it still runs; the
    next ``poll`` picks up the same call, so no frame is skipped or read twice. A call that never
    returns (a wedged libcamera, a stream that stopped answering) can be ``abandon``-ed: its
    thread is left to finish or die with the process, ``cleanup`` (the source's close) runs on
    that thread if the call ever returns, never concurrently with it, and later calls get a fresh
    worker. The worker is kept between calls: a hand-off costs tens of microseconds, not a thread::

        call = BoundedCall()
        done, frame = call.poll(source.read, timeout=0.25)
    """

    def __init__(self, name: str = "camera") -> None:
        self.name = name
        self._job: _Job | None = None
        self._jobs: queue.SimpleQueue | None = None

    @property
    def busy(self) -> bool:
        """True while a started call has not been collected."""
        return self._job is not None

    def poll(self, fn: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
        """Start ``fn`` if idle, wait up to ``timeout``; exceptions of ``fn`` are re-raised here."""
        if self._job is None:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=_work, args=(self._jobs,), name=f"maskipy-{self.name}",
                                 daemon=True).start()
            self._job = _Job(fn)
            self._jobs.put(self._job)
        job = self._job
        if not job.done.wait(timeout):
            return False, None
        self._job = None
        if job.error is not None:
            raise job.error
        return True, job.value

    def abandon(self, cleanup: Callable[[], Any] | None = None) -> bool:
        """Forget the call in flight; True if there was one (``cleanup`` then runs when it returns).

        With no call in flight, ``cleanup`` runs here and now.
        """
        job, self._job = self._job, None
        pending = False
        if job is not None:
            with job.lock:
                pending = not job.done.is_set()
                if pending:
                    job.cleanup = cleanup
        if pending and self._jobs is not None:
            self._jobs.put(None)  # the stuck worker exits once its call returns; the next call gets a new one
            self._jobs = None
        if not pending and cleanup is not None:
            cleanup()
        return pending

    def close(self) -> None:
        """Let the worker thread end (after any call in flight)."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None
