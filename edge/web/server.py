"""The status page's HTTP server: http.server's request handler behind a bounded front door."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import io
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from ..config import HttpConfig
from ..errors import OutputError
from .frontdoor import FrontDoor, Limits
from .metrics import GateMetrics
from .preview import PreviewFeed
from .status import GateStatus

log = logging.getLogger(__name__)

BOUNDARY = "maskipy-frame"
SNAPSHOT_WAIT_SECONDS = 3.0
MAX_STREAMS = 3  # live previews at once; each holds one of the front door's workers
# The page is one self-contained file: inline script and style, no CDN, images only from here.
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "img-src 'self' data:; connect-src 'self'")


def check_credentials(header: str | None, password: str) -> bool | None:
    """True if ``header`` carries ``password`` (Basic, any user, or Bearer); None if it carries nothing."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() == "bearer":
        given = value.strip()
    else:
        return False
    return hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8"))


class _Context:
    """What a handler reads as ``self.server``: the app (one per server)."""

    def __init__(self, app: StatusServer) -> None:
        self.app = app


class StatusHandler(BaseHTTPRequestHandler):
    """One request: check the password, then the page, /status.json, /metrics or the preview."""

    server: _Context
    request: tuple[socket.socket, bytes]
    server_version = "maskipy"
    sys_version = ""

    def setup(self) -> None:
        # The front door has read the request head already; the body, if any, is never read.
        self.connection, head = self.request
        self.rfile = io.BytesIO(head)
        self.wfile = self.connection.makefile("wb", buffering=0)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.close()

    def do_GET(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        if not self._authorized(app, path):
            return
        routes = {"/": self._page, "/index.html": self._page, "/status.json": self._status,
                  "/metrics": self._metrics, "/stream.mjpg": self._stream, "/snapshot.jpg": self._snapshot}
        handler = routes.get(path)
        if handler is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
            return
        handler(app)

    def _authorized(self, app: StatusServer, path: str) -> bool:
        if not app.password:
            return True
        verdict = check_credentials(self.headers.get("Authorization"), app.password)
        if verdict:
            return True
        if verdict is False:
            log.warning("http: wrong password from %s for %s", self.client_address[0], path)
        else:
            # Browsers ask without a password first, then prompt: not worth a warning.
            log.debug("http: no password from %s for %s", self.client_address[0], path)
        self._send(HTTPStatus.UNAUTHORIZED, b"401 unauthorized\n", "text/plain; charset=utf-8",
                   {"WWW-Authenticate": 'Basic realm="maskipy", charset="UTF-8"'})
        return False

    def _page(self, app: StatusServer) -> None:
        self._send(HTTPStatus.OK, app.page, "text/html; charset=utf-8",
                   {"Content-Security-Policy": PAGE_POLICY})

    def _status(self, app: StatusServer) -> None:
        body = json.dumps({**app.status.snapshot(), "preview": app.preview is not None}).encode("utf-8")
        self._send(HTTPStatus.OK, body, "application/json")

    def _metrics(self, app: StatusServer) -> None:
        body, content_type = app.metrics.render()
        self._send(HTTPStatus.OK, body, content_type)

    def _snapshot(self, app: StatusServer) -> None:
        feed = self._preview_or_404(app)
        if feed is None:
            return
        with feed.watch():
            fresh = feed.next_jpeg(feed.sequence, SNAPSHOT_WAIT_SECONDS)
        jpeg = fresh[1] if fresh else feed.jpeg
        if jpeg is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain; charset=utf-8")
            return
        self._send(HTTPStatus.OK, jpeg, "image/jpeg")

    def _stream(self, app: StatusServer) -> None:
        feed = self._preview_or_404(app)
        if feed is None:
            return
        with app.stream_slot() as admitted:
            if not admitted:  # each stream holds a worker: keep some for the page and /metrics
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"too many preview streams; try later\n",
                           "text/plain; charset=utf-8", {"Retry-After": "10"})
                return
            self.send_response(HTTPStatus.OK)
            self._common_headers()
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.end_headers()
            self._frames(app, feed, 0)

    def _frames(self, app: StatusServer, feed: PreviewFeed, sequence: int) -> None:
        with feed.watch():
            while not app.stopping.is_set() and not feed.stopped:
                got = feed.next_jpeg(sequence, 1.0)
                if got is None:
                    continue
                sequence, jpeg = got
                try:
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     f"{len(jpeg)}\r\n\r\n".encode("ascii") + jpeg + b"\r\n")
                except OSError:  # gone, or not taking frames within the send timeout
                    break
        self.close_connection = True

    def _preview_or_404(self, app: StatusServer) -> PreviewFeed | None:
        if app.preview is None:
            self._send(HTTPStatus.NOT_FOUND, b"the preview is off; set [http] preview = yes\n",
                       "text/plain; charset=utf-8")
        return app.preview

    def _common_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")

    def _send(self, code: HTTPStatus, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self._common_headers()
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            log.debug("http: %s went away", self.client_address[0])

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: %s %s", self.client_address[0], format % args)


class StatusServer:
    """Serves the status page of one gate on ``[http] bind``:``port`` through a ``FrontDoor``.

    Requests are answered from ``GateStatus.snapshot()`` and the preview feed, so no request ever
    waits on the frame loop or makes it wait. Connections, threads, header time and request size
    are bounded before the password is checked (``limits``); at most ``MAX_STREAMS`` previews
    stream at once. ``port = 0`` picks a free port (see ``url``)::

        server = StatusServer(config.http, status, GateMetrics(status)); server.start()
        print(server.url); ...; server.close()
    """

    def __init__(self, http: HttpConfig, status: GateStatus, metrics: GateMetrics,
                 preview: PreviewFeed | None = None, limits: Limits | None = None) -> None:
        self.status, self.metrics, self.preview = status, metrics, preview
        self.password = http.password
        self.page = resources.files(__package__).joinpath("status.html").read_bytes()
        self.stopping = threading.Event()
        self._streams = threading.BoundedSemaphore(MAX_STREAMS)
        context = _Context(self)
        try:
            self._door = FrontDoor((http.bind, http.port),
                                   lambda conn, head, address: StatusHandler((conn, head), address, context),
                                   limits)
        except OSError as exc:
            raise OutputError(f"[http] bind = {http.bind}, port = {http.port}: cannot listen there "
                              f"({exc.strerror or exc}); pick another port or address, or stop what "
                              f"uses it") from None

    @property
    def port(self) -> int:
        return int(self._door.address[1])

    @property
    def url(self) -> str:
        host = self._door.address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    @contextlib.contextmanager
    def stream_slot(self) -> Iterator[bool]:
        """One of the ``MAX_STREAMS`` preview streams: yields False when all are taken."""
        admitted = self._streams.acquire(blocking=False)
        try:
            yield admitted
        finally:
            if admitted:
                self._streams.release()

    def start(self) -> StatusServer:
        self._door.start()
        log.info("http: status page at %s%s", self.url, " (live preview on)" if self.preview else "")
        return self

    def close(self) -> None:
        """Stop serving and end open preview streams; idempotent."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self._door.close()
