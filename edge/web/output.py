"""The status page as an output: counted people into the GateStatus, frames to the live preview."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ..config import HttpConfig
from ..outputs.base import Output
from ..tracking import CountEvent, Track
from .metrics import GateMetrics
from .preview import PreviewFeed
from .server import StatusServer
from .status import GateStatus


class StatusPageOutput(Output):
    """Serves ``[http]``: the page, /status.json, /metrics and, with ``preview = yes``, the preview.

    Starts the server when built and stops it at ``close()``. Per counted person it updates the
    status (a dict under a lock); per frame it offers the frame to the preview, which costs nothing
    while nobody watches. ``peers``, the other outputs, add their own numbers to /metrics (the MQTT
    output's dropped events). The runtime calls ``status.update_frame`` for speed and health::

        page = StatusPageOutput(config.http, GateStatus(config.classifier.labels))
        print(page.server.url)
    """

    name = "http"

    def __init__(self, http: HttpConfig, status: GateStatus, peers: Iterable[Output] = ()) -> None:
        self.status = status
        self.metrics = GateMetrics(status, peers=tuple(peers))
        self.preview = PreviewFeed(http.preview_fps, http.preview_width) if http.preview else None
        try:
            self.server = StatusServer(http, status, self.metrics, self.preview).start()
        except BaseException:
            if self.preview is not None:
                self.preview.close()
            raise

    def on_count(self, event: CountEvent) -> None:
        self.status.record_count(event)

    def on_frame(self, tracks: Sequence[Track], frame: np.ndarray) -> None:
        if self.preview is not None:
            self.preview.offer(tracks, frame)

    def close(self) -> None:
        self.server.close()
        if self.preview is not None:
            self.preview.close()
