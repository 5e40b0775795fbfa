"""MQTT output: counted people, totals, alert and frames/s to a broker, queued on disk while it is away."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MqttConfig
from ..errors import OutputError
from ..tracking import CountEvent, Track
from .alert import AlertHold
from .base import Output
from .hass import OFFLINE, GateTopics
from .sender import CLOSE_GRACE_SECONDS, WINDOW, MqttSender
from .spool import SpoolKeeper

log = logging.getLogger(__name__)

SPOOL_FILE = "mqtt-spool.sqlite3"


def build_client(config: MqttConfig, topics: GateTopics, *, probe: bool = False) -> Any:
    """A paho-mqtt 2 client with the last will, credentials and TLS of ``[mqtt]`` (not yet connected).

    A ``probe`` client (``maskipy-edge check``) has its own client id and no will, so checking a
    running gate's broker neither kicks the gate off nor marks it offline.
    """
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"maskipy-{topics.id}" + ("-check" if probe else ""),
                         protocol=mqtt.MQTTv311, clean_session=True)
    if not probe:
        client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    if config.tls:
        client.tls_set(ca_certs=_path(config.ca_file), certfile=_path(config.cert_file),
                       keyfile=_path(config.key_file))
        client.tls_insecure_set(config.tls_insecure)
    client.max_inflight_messages_set(2 * WINDOW)
    client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(config.reconnect_max_seconds)))
    return client


def probe_broker(config: MqttConfig, timeout: float = 5.0) -> str:
    """Connect once with ``[mqtt]``'s settings and leave: what ``maskipy-edge check`` reports."""
    topics = GateTopics.from_config(config)
    client = build_client(config, topics, probe=True)
    client.connect_timeout = timeout
    answer: list[Any] = []
    client.on_connect = lambda _client, _userdata, _flags, reason, _properties: answer.append(reason)
    where = f"{config.host}:{config.port}"
    try:
        client.connect(config.host, config.port, keepalive=config.keepalive)
        deadline = time.monotonic() + timeout
        while not answer and time.monotonic() < deadline:
            client.loop(timeout=0.1)
    except (OSError, ValueError) as exc:
        raise OutputError(f"[mqtt] {where}: cannot connect ({exc}); check host, port, tls and that the "
                          f"broker runs") from None
    finally:
        client.disconnect()
    if not answer:
        raise OutputError(f"[mqtt] {where}: no answer within {timeout:.0f} s; check host, port and tls")
    if answer[0].is_failure:
        raise OutputError(f"[mqtt] {where}: refused ({answer[0]}); check username and password")
    return f"{where} accepts gate {topics.name}; topics {topics.base}/..."


def host_problem(host: str) -> str | None:
    """Why ``host`` cannot be looked up (a label over 63 characters, an empty one), or None.

    The name lookup would raise UnicodeError in paho's thread and end it, so it is checked here.
    """
    try:
        host.encode("idna")
    except UnicodeError as exc:
        shown = host if len(host) <= 40 else host[:37] + "..."
        return (f"[mqtt] host = {shown}: not a valid host name ({exc.__cause__ or exc}); each part "
                f"between dots is 1-63 characters")
    return None


def _path(path: Path | None) -> str | None:
    return str(path) if path is not None else None


class MqttOutput(Output):
    """Publishes each counted person, per-class totals, the alert state and frames/s to MQTT.

    Home Assistant finds the gate by MQTT discovery. The frame loop only puts news in a queue; a
    sender thread keeps events on disk (``<state_dir>/mqtt-spool.sqlite3``) until the broker
    acknowledges them, so a broker outage or a restart loses nothing (past ``queue_max_events``
    the oldest are dropped and counted in ``dropped``). A full, read-only or damaged disk, or a
    host name that cannot be looked up, degrades MQTT alone (``degraded`` says why): events wait
    in memory or in the spool. paho's own thread connects and reconnects::

        mqtt = MqttOutput(MqttConfig(enabled=True, host="broker"), state_dir="state",
                          labels=("properly_masked", "unmasked"), alert_classes=("unmasked",))
    """

    name = "mqtt"

    def __init__(self, config: MqttConfig, *, state_dir: str | Path, labels: Iterable[str],
                 alert_classes: Iterable[str], hold_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.topics = config, GateTopics.from_config(config)
        # The same hold as the alert LED, so the alert does not flicker between frames.
        self.alert_hold, self._clock = AlertHold(alert_classes, hold_seconds), clock
        keeper = SpoolKeeper(Path(state_dir) / SPOOL_FILE, max_events=config.queue_max_events,
                             retry_max=config.reconnect_max_seconds)
        try:
            client = build_client(config, self.topics)
        except BaseException:
            keeper.close()
            raise
        self.sender = MqttSender(config, self.topics, keeper, tuple(labels), client)
        if len(keeper.spool):
            log.info("%s: %d events queued from before; they go out when the broker answers",
                     keeper.spool.where, len(keeper.spool))
        self._alert = False
        self._frames, self._fps_since = 0, clock()
        self._closed = False
        self.sender.thread.start()
        self.host_problem = host_problem(config.host)
        if self.host_problem is not None:
            log.warning("%s; counted people wait in the spool until it is fixed", self.host_problem)
            return
        # connect_async + loop_start: name lookup, connect and every reconnect happen in paho's thread.
        client.connect_async(config.host, config.port, keepalive=config.keepalive)
        client.loop_start()

    @property
    def degraded(self) -> str | None:
        """Why MQTT is not working as it should (the runtime adds it to STATUS=); None when it is."""
        if self.host_problem is not None:
            return f"mqtt: degraded, {self.host_problem}"
        return self.sender.degraded

    @property
    def dropped(self) -> int:
        """Events dropped since the gate was set up because the on-disk queue was full."""
        return self.sender.spool.dropped

    @property
    def queued(self) -> int:
        """Events spooled and not yet acknowledged by the broker (an int the sender keeps: no query)."""
        return len(self.sender.spool)

    def on_count(self, event: CountEvent) -> None:
        self.sender.inbox.put(("event", event))

    def on_frame(self, tracks: Sequence[Track], frame: np.ndarray) -> None:
        now = self._clock()
        self._frames += 1
        alert = self.alert_hold.update(tracks, now)
        if alert != self._alert:
            self._alert = alert
            self.sender.inbox.put(("state", (self.topics.alert, "ON" if alert else "OFF")))
        elapsed = now - self._fps_since
        if elapsed >= self.config.fps_seconds:
            self.sender.inbox.put(("state", (self.topics.fps, f"{self._frames / elapsed:.2f}")))
            self._frames, self._fps_since = 0, now

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sender.inbox.put(("stop", None))
        self.sender.thread.join(timeout=CLOSE_GRACE_SECONDS + 5)
