"""Hostile clients of the status page for ``status_page.py``, and a watch on the gate's threads and RSS.

``SlowClients``: N connections that each send a request head a byte at a time and never finish it
(slowloris), re-opened as soon as the server closes them, all from one thread with ``selectors``.
``BusyClients``: N threads fetching /status.json and /metrics back to back as fast as they can.
``ProcessWatch``: the peak ``Threads:`` and ``VmRSS:`` of a process, read from /proc periodically.
"""

from __future__ import annotations

import errno
import http.client
import selectors
import socket
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

HEAD_START = b"GET /status.json HTTP/1.1\r\n"  # sent on connect; the rest drips, and never ends
HEAD_DRIP = b"Host: gate\r\nX-Slow: " + b"a" * 4096
DRIP_S = 1.0  # a byte per connection this often
WATCH_S = 0.05


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class _Slow:
    __slots__ = ("connected", "next_drip", "sent")

    def __init__(self) -> None:
        self.connected, self.sent, self.next_drip = False, 0, 0.0


class SlowClients:
    """``count`` connections sending a partial request head slowly, each re-opened when it is closed."""

    def __init__(self, url: str, count: int = 300) -> None:
        self.address, self.count = host_port(url), count
        self.stats: Counter[str] = Counter()
        self.open_now = 0
        self.stop = threading.Event()
        self.selector = selectors.DefaultSelector()
        self.sockets: dict[socket.socket, _Slow] = {}
        for _ in range(count):
            self._open()
        self.thread = threading.Thread(target=self._loop, name="slow-clients", daemon=True)
        self.thread.start()

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(self.address)
        self.stats["opened"] += 1
        if code not in (0, errno.EINPROGRESS):
            self.stats["connect_failed"] += 1
            sock.close()
            return
        self.sockets[sock] = _Slow()
        self.selector.register(sock, selectors.EVENT_WRITE)

    def _close(self, sock: socket.socket, why: str) -> None:
        state = self.sockets.pop(sock)
        self.open_now -= state.connected
        self.selector.unregister(sock)
        sock.close()
        self.stats[why] += 1

    def _event(self, sock: socket.socket, state: _Slow) -> None:
        if not state.connected:  # writable: the connect finished, one way or the other
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._close(sock, "connect_failed")
                return
            state.connected, state.next_drip = True, time.monotonic() + DRIP_S
            self.open_now += 1
            self.stats["connected"] += 1
            self.selector.modify(sock, selectors.EVENT_READ)
            self._send(sock, HEAD_START)
            return
        try:  # readable: the server answered (408, 503) or closed; either way it is done with us
            answer = sock.recv(64)
        except OSError:
            answer = b""
        self._close(sock, f"closed_{answer[9:12].decode('ascii', 'replace')}" if answer else "closed")

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.send(data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(sock, "send_failed")

    def _drip(self, now: float) -> None:
        for sock, state in list(self.sockets.items()):
            if state.connected and now >= state.next_drip and sock in self.sockets:
                self._send(sock, HEAD_DRIP[state.sent:state.sent + 1])
                state.sent, state.next_drip = (state.sent + 1) % len(HEAD_DRIP), now + DRIP_S

    def _loop(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.1):
                state = self.sockets.get(key.fileobj)  # type: ignore[arg-type]
                if state is not None:
                    self._event(key.fileobj, state)  # type: ignore[arg-type]
            self._drip(time.monotonic())
            for _ in range(self.count - len(self.sockets)):  # re-open what the server closed
                self._open()

    def close(self) -> dict[str, Any]:
        """Stop, close every connection; the counts (opened, connected, closed_408, ...)."""
        self.stop.set()
        self.thread.join(timeout=10)
        open_at_end = self.open_now
        for sock in list(self.sockets):
            self._close(sock, "closed_by_us")
        self.selector.close()
        return {"clients": self.count, "open_at_end": open_at_end, **dict(sorted(self.stats.items()))}


class BusyClients:
    """``count`` threads each fetching /status.json then /metrics, back to back, until closed."""

    PATHS = ("/status.json", "/metrics")

    def __init__(self, url: str, count: int = 50) -> None:
        self.address = host_port(url)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.threads = [threading.Thread(target=self._fetch, name=f"busy-{n}", daemon=True)
                        for n in range(count)]
        for thread in self.threads:
            thread.start()

    def _get(self, path: str) -> str:
        connection = http.client.HTTPConnection(*self.address, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            return "answered" if response.status == 200 else f"failed_{response.status}"
        except (OSError, http.client.HTTPException):
            return "failed_error"
        finally:
            connection.close()

    def _fetch(self) -> None:
        mine: Counter[str] = Counter()
        while not self.stop.is_set():
            for path in self.PATHS:
                mine[self._get(path)] += 1
        with self.lock:
            self.stats.update(mine)

    def close(self) -> dict[str, Any]:
        """Stop and the counts: answered (200) and failed (by status, or ``failed_error``)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)
        failed = sum(n for key, n in self.stats.items() if key.startswith("failed"))
        return {"clients": len(self.threads), "answered": self.stats["answered"], "failed": failed,
                **{k: n for k, n in sorted(self.stats.items()) if k.startswith("failed_")}}


class ProcessWatch:
    """Peak thread count and RSS of process ``pid``, read from /proc/<pid>/status every ``every_s``."""

    def __init__(self, pid: int, every_s: float = WATCH_S) -> None:
        self.path, self.every_s = f"/proc/{pid}/status", every_s
        self.threads_peak, self.rss_peak_kb, self.samples = 0, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="process-watch", daemon=True)
        self.thread.start()

    def sample(self) -> None:
        try:
            with open(self.path, encoding="ascii", errors="replace") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except OSError:
            return
        self.threads_peak = max(self.threads_peak, int(fields.get("Threads", "0")))
        self.rss_peak_kb = max(self.rss_peak_kb, int(fields.get("VmRSS", "0 kB").split()[0]))
        self.samples += 1

    def _watch(self) -> None:
        while not self.stop.wait(self.every_s):
            self.sample()

    def close(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join(timeout=5)
        return {"threads_peak": self.threads_peak, "rss_sampled_peak_mb": round(self.rss_peak_kb / 1024, 1),
                "watch_samples": self.samples}
