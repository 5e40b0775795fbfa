"""Blocking camera calls run on a daemon thread, so the frame loop waits for them only so long."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any


class BoundedCall:
    """One blocking call at a time (a capture, an open) on its own daemon thread.

    ``poll(fn, timeout)`` starts ``fn`` unless a call is already in flight, then waits at most
    ``timeout`` seconds: (True, result) when it finished, (False, None) while it still runs; the
    next ``poll`` picks up the same call, so no frame is skipped or read twice. A call that never
    returns (a wedged libcamera, a stream that stopped answering) can be ``abandon``-ed: its
    thread is left to finish or die with the process, and ``cleanup`` (the source's close) runs
    on that thread if the call ever returns, never concurrently with it::

        call = BoundedCall()
        done, frame = call.poll(source.read, timeout=0.25)
    """

    def __init__(self, name: str = "camera") -> None:
        self.name = name
        self._done: threading.Event | None = None
        self._box: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """True while a started call has not been collected."""
        return self._done is not None

    def poll(self, fn: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
        """Start ``fn`` if idle, wait up to ``timeout``; exceptions of ``fn`` are re-raised here."""
        if self._done is None:
            self._start(fn)
        assert self._done is not None
        if not self._done.wait(timeout):
            return False, None
        box, self._done, self._box = self._box, None, {}
        if "error" in box:
            raise box["error"]
        return True, box.get("value")

    def _start(self, fn: Callable[[], Any]) -> None:
        done, box = threading.Event(), self._box

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller of poll()
                box["error"] = exc
            finally:
                with self._lock:
                    done.set()
                    cleanup = box.get("cleanup")
                if cleanup is not None:
                    # Nobody is left to tell of a failure; the source is being dropped anyway.
                    with contextlib.suppress(Exception):
                        cleanup()

        self._done = done
        threading.Thread(target=target, name=f"maskipy-{self.name}", daemon=True).start()

    def abandon(self, cleanup: Callable[[], Any] | None = None) -> bool:
        """Forget the call in flight; True if there was one (``cleanup`` then runs when it returns).

        With no call in flight, ``cleanup`` runs here and now.
        """
        with self._lock:
            pending = self._done is not None and not self._done.is_set()
            if pending:
                self._box["cleanup"] = cleanup
        self._done, self._box = None, {}
        if not pending and cleanup is not None:
            cleanup()
        return pending
