"""What the MQTT tests share: a real Mosquitto on a free local port per test, a recording client,
the gate's topic names, and the skip that names the package when Mosquitto is missing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
from mosquitto import MOSQUITTO, Mosquitto, Recorder, free_port, make_tls_files  # noqa: E402

__all__ = ["EVENTS", "GATE", "LABELS", "Mosquitto", "Recorder", "broker", "free_port", "make_tls_files",
           "needs_mosquitto", "recorder"]

needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed; "
                                     "apt-get install -y --no-install-recommends mosquitto")

LABELS = ("properly_masked", "improperly_masked", "unmasked")
GATE = "door-1"
EVENTS = f"maskipy/{GATE}/event"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def recorder(broker: Mosquitto) -> Iterator[Recorder]:
    client = Recorder(broker.port).start()
    yield client
    client.stop()
