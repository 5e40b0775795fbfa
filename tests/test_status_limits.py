"""The status page's bounds, before the password: connections, threads, header time, request size.

Real sockets on loopback against the real server, bounded in count (300) and in time (a few
seconds each); the only timed bound is the header timeout the server itself announces.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from maskipy.edge.config import HttpConfig
from maskipy.edge.web.frontdoor import HEADER_SECONDS, MAX_REQUEST_BYTES
from maskipy.edge.web.metrics import GateMetrics
from maskipy.edge.web.preview import PreviewFeed
from maskipy.edge.web.server import StatusServer
from maskipy.edge.web.status import GateStatus

LABELS = ("properly_masked", "improperly_masked", "unmasked")
PASSWORD = "s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"gate:{PASSWORD}".encode()).decode()}


@pytest.fixture
def server() -> Iterator[StatusServer]:
    status = GateStatus(LABELS)
    page = StatusServer(HttpConfig(enabled=True, port=0, password=PASSWORD), status,
                        GateMetrics(status)).start()
    yield page
    page.close()


def slow_client(port: int) -> socket.socket:
    """A client that sent half a request head and waits (slowloris)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /status.json HTTP/1.1\r\nHost: gate\r\nX-Slow: ")
    return sock


def test_300_slow_clients_hold_at_most_32_server_threads_and_the_page_still_answers(server):
    before = threading.active_count()
    clients: list[socket.socket] = []
    try:
        for _ in range(300):
            clients.append(slow_client(server.port))
        time.sleep(0.5)  # a thread-per-connection server has started one for each by now
        added = threading.active_count() - before
        request = urllib.request.Request(server.url + "status.json", headers=AUTH)
        with urllib.request.urlopen(request, timeout=10) as response:
            answered = response.status, json.loads(response.read())["labels"]
    finally:
        for client in clients:
            client.close()
    assert added <= 32, f"{added} threads for 300 slow clients"
    assert answered == (200, list(LABELS))


def test_a_request_head_that_never_ends_is_cut_at_the_header_timeout(server):
    client = slow_client(server.port)
    started = time.monotonic()
    answer, closed = b"", False
    with contextlib.closing(client):
        client.settimeout(0.5)
        while not closed and time.monotonic() < started + HEADER_SECONDS + 3:
            try:
                chunk = client.recv(1024)
            except TimeoutError:
                client.sendall(b"x")  # a byte at a time keeps a per-read timeout from ever firing
                continue
            except ConnectionResetError:
                chunk = b""
            answer, closed = answer + chunk, not chunk
    assert closed, f"still open after {time.monotonic() - started:.1f} s"
    assert answer == b"" or answer.startswith(b"HTTP/1.0 408"), answer


def test_an_oversized_request_is_refused_before_the_password_check(server, caplog):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
        big = b"a" * (2 * MAX_REQUEST_BYTES)
        client.sendall(b"GET / HTTP/1.1\r\nHost: gate\r\nX-Big: " + big + b"\r\n\r\n")
        answer = client.recv(1024)
    assert answer.startswith(b"HTTP/1.0 431")
    assert "password" not in caplog.text
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: gate\r\n\r\n")
        assert client.recv(1024).startswith(b"HTTP/1.0 401"), "an ordinary request reaches the check"


def test_preview_streams_are_capped_and_a_watcher_that_stops_reading_does_not_stall_the_feed():
    status = GateStatus(LABELS)
    feed = PreviewFeed(fps=30.0, width=160)
    page = StatusServer(HttpConfig(enabled=True, port=0, preview=True), status, GateMetrics(status),
                        feed).start()
    watchers = []
    try:
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", page.port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: gate\r\n\r\n")
            watchers.append(sock)
        time.sleep(0.5)
        frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
        offered = 0
        for _ in range(60):  # nobody reads the streams: offering must still return at once
            offered += feed.offer([], frame)
            time.sleep(0.01)
        answers = sorted(sock.recv(12) for sock in watchers)
        with urllib.request.urlopen(page.url + "status.json", timeout=10) as response:
            assert response.status == 200, "the page answers while previews hog their workers"
    finally:
        for sock in watchers:
            sock.close()
        page.close()
        feed.close()
    assert answers == [b"HTTP/1.0 200"] * 3 + [b"HTTP/1.0 503"], "three streams at once, the fourth refused"
    assert offered > 0


def test_a_connection_flood_is_taken_at_a_bounded_rate():
    """Clients that reconnect as fast as they are closed (or ask back to back) wait in the kernel's
    backlog: the door takes at most its rate a second, so the flood cannot take the frame loop's CPU."""
    from maskipy.edge.web.frontdoor import FrontDoor, Limits

    door = FrontDoor(("127.0.0.1", 0), lambda conn, head, address: None, Limits(accepts_per_second=50.0))
    door.start()
    flood: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(250):  # under the listen backlog (256): every handshake completes at once
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(door.address)
            flood.append(sock)
        time.sleep(1.0)
        elapsed = time.monotonic() - started
        taken = door.accepted
    finally:
        for sock in flood:
            sock.close()
        door.close()
    assert 40 <= taken <= 50 + 50 * elapsed + 5, f"{taken} connections taken in {elapsed:.2f} s"
