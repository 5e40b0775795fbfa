"""An output that does nothing, for runs that only want the runtime's own counts."""

from __future__ import annotations

from .base import Output


class NullOutput(Output):
    """Does nothing; ``[outputs] devices = null`` (like picamera2's NullPreview)."""

    name = "null"
