"""The status page: a small HTTP server for /, /status.json, /metrics and an opt-in live preview."""

from .metrics import GateMetrics
from .preview import PreviewFeed
from .server import StatusServer

__all__ = ["GateMetrics", "PreviewFeed", "StatusServer"]
