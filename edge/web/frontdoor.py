"""The status page's front door: connections, header time and request size bounded before any handler."""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # connections still sending their request; past it the oldest is closed
WORKERS = 8  # threads that answer complete requests (a preview stream holds one)
QUEUE = 16  # complete requests waiting for a worker; past it: 503
HEADER_SECONDS = 5.0  # the request line and headers must arrive within this
SEND_SECONDS = 10.0  # a client must take each reply (each preview frame) within this
MAX_REQUEST_BYTES = 8192  # request line and headers; a body is never read
# Connections accepted a second (and at once): a page and Prometheus need a few; past it the listener
# rests and the kernel's backlog holds them, so a flood costs the frame loop almost no CPU.
ACCEPTS_PER_SECOND = 50.0

Handler = Callable[[socket.socket, bytes, Any], None]


def _reply(conn: socket.socket, status: str) -> None:
    """A last word before closing (best effort: the client may be gone or not reading)."""
    with contextlib.suppress(OSError):
        conn.send(f"HTTP/1.0 {status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode("ascii"))


@dataclass
class _Arriving:
    address: Any
    deadline: float
    data: bytearray = field(default_factory=bytearray)


@dataclass
class Limits:
    """The front door's bounds (tests shorten the times)."""

    max_connections: int = MAX_CONNECTIONS
    workers: int = WORKERS
    queue: int = QUEUE
    header_seconds: float = HEADER_SECONDS
    send_seconds: float = SEND_SECONDS
    max_request_bytes: int = MAX_REQUEST_BYTES
    accepts_per_second: float = ACCEPTS_PER_SECOND


class FrontDoor:
    """Listens on one address; one thread reads every request's head, a fixed pool answers them.

    Until its request line and headers are complete, a connection costs a buffer, not a thread:
    the door thread reads all of them with ``selectors``. A head that takes longer than
    ``header_seconds`` gets 408, one over ``max_request_bytes`` 431, a connection past
    ``max_connections`` closes the oldest still arriving, and a full queue answers 503; all of it
    before the handler (and the password check) runs. At most ``accepts_per_second`` connections
    are taken a second: clients that reconnect as fast as they are closed, or ask back to back,
    wait in the kernel's backlog instead of taking the CPU the frame loop needs.
    ``handle(conn, head, address)`` runs in one of ``workers`` threads, the socket blocking with a
    ``send_seconds`` timeout::

        door = FrontDoor(("127.0.0.1", 0), handle); door.start(); ...; door.close()
    """

    def __init__(self, address: tuple[str, int], handle: Handler, limits: Limits | None = None) -> None:
        self.handle, self.limits = handle, limits or Limits()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(address)
            self.listener.listen(256)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()
        self.stopping = threading.Event()
        self._arriving: dict[socket.socket, _Arriving] = {}  # in arrival order
        self._ready: queue.Queue[tuple[socket.socket, bytes, Any]] = queue.Queue(self.limits.queue)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self.accepted = 0
        self._tokens, self._refilled = self.limits.accepts_per_second, time.monotonic()
        self._resting_until: float | None = None  # the listener rests (unregistered) until then
        self._threads = [threading.Thread(target=self._door, name="maskipy-http", daemon=True)]
        self._threads += [threading.Thread(target=self._work, name=f"maskipy-http-{n}", daemon=True)
                          for n in range(self.limits.workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop accepting, close what is still arriving; workers finish their request; idempotent."""
        self.stopping.set()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=2.0)
        with contextlib.suppress(OSError):
            self.listener.close()

    # The door thread.
    def _door(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    self._turn()
                # The door thread is the page: a bug in one turn is logged, the next turn goes on.
                except Exception:
                    log.exception("http: front door")
                    time.sleep(0.2)
        finally:
            for conn in list(self._arriving):
                self._drop(conn)
            self._selector.close()

    def _turn(self) -> None:
        timeout = 0.2
        if self._resting_until is not None:
            left = self._resting_until - time.monotonic()
            if left <= 0:
                self._resting_until = None
                self._selector.register(self.listener, selectors.EVENT_READ)
            else:
                timeout = min(timeout, left)
        for key, _ in self._selector.select(timeout=timeout):
            if key.fileobj is self.listener:
                self._accept()
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]
        self._expire(time.monotonic())

    def _take_token(self) -> bool:
        """One accept from the rate's bucket; False (and the listener resting) when it is empty."""
        now, rate = time.monotonic(), self.limits.accepts_per_second
        self._tokens = min(rate, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self._selector.unregister(self.listener)
        self._resting_until = now + (1.0 - self._tokens) / rate
        return False

    def _accept(self) -> None:
        for _ in range(64):  # a burst, then back to reading
            if not self._take_token():
                return
            try:
                conn, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                self._tokens += 1.0  # nothing was waiting: the token was not spent
                return
            except OSError as exc:  # out of file descriptors: try again at the next turn
                log.warning("http: cannot accept a connection: %s", exc)
                return
            self.accepted += 1
            if len(self._arriving) >= self.limits.max_connections:
                self._drop(next(iter(self._arriving)), "503 Service Unavailable")
            conn.setblocking(False)
            self._arriving[conn] = _Arriving(address, time.monotonic() + self.limits.header_seconds)
            self._selector.register(conn, selectors.EVENT_READ)

    def _read(self, conn: socket.socket) -> None:
        arriving = self._arriving.get(conn)
        if arriving is None:  # closed earlier in this turn (the oldest, making room)
            return
        try:
            chunk = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(conn)
            return
        arriving.data += chunk
        end = max(arriving.data.find(b"\r\n\r\n"), arriving.data.find(b"\n\n"))
        if end < 0 or end > self.limits.max_request_bytes:
            if len(arriving.data) > self.limits.max_request_bytes:
                log.debug("http: request head over %d bytes from %s", self.limits.max_request_bytes,
                          arriving.address[0])
                self._drop(conn, "431 Request Header Fields Too Large")
            return
        self._selector.unregister(conn)
        del self._arriving[conn]
        conn.setblocking(True)
        conn.settimeout(self.limits.send_seconds)
        try:
            self._ready.put_nowait((conn, bytes(arriving.data), arriving.address))
        except queue.Full:
            _reply(conn, "503 Service Unavailable")
            conn.close()

    def _expire(self, now: float) -> None:
        for conn, arriving in list(self._arriving.items()):
            if arriving.deadline > now:
                break  # in arrival order: the rest came later
            self._drop(conn, "408 Request Timeout")

    def _drop(self, conn: socket.socket, status: str | None = None) -> None:
        self._arriving.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        if status is not None:
            _reply(conn, status)
        conn.close()

    # The workers.
    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, head, address = self._ready.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.handle(conn, head, address)
            except OSError as exc:  # the client went away or stopped reading
                log.debug("http: %s: %s", address[0], exc)
            # A bug in one request must not cost the page a worker.
            except Exception:
                log.exception("http: the request from %s failed", address[0])
            finally:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
