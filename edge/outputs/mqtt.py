"""MQTT output: counted people, totals, alert and frames/s to a broker, queued on disk while it is away."""

from __future__ import annotations

import json
import logging
import queue
import threading
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
from .hass import OFFLINE, ONLINE, GateTopics
from .spool import Spool

log = logging.getLogger(__name__)

SPOOL_FILE = "mqtt-spool.sqlite3"
# Events handed to the MQTT client at once; the rest wait on disk, so memory stays small.
WINDOW = 20
CLOSE_GRACE_SECONDS = 2.0


def _version() -> str:
    from ..cli_runner import package_version

    return package_version()


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


def _path(path: Path | None) -> str | None:
    return str(path) if path is not None else None


class MqttSender:
    """The thread between the frame loop and the broker: it owns the spool and the paho client.

    Everything reaches it through ``inbox`` (events from the frame loop, acknowledgements and
    connection news from paho's network thread), so neither the frame loop nor paho ever waits on
    the other or on the disk. Events go out in spool order, ``WINDOW`` at a time; each is removed
    from the spool only when the broker acknowledged it (PUBACK).
    """

    def __init__(self, config: MqttConfig, topics: GateTopics, spool: Spool, labels: Sequence[str],
                 client: Any) -> None:
        self.config, self.topics, self.spool, self.client = config, topics, spool, client
        self.labels = tuple(labels)
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.inflight: dict[int, int] = {}  # paho mid -> spool seq
        self.handed = 0  # highest spool seq handed to paho
        self.connected = False
        self.resending = False  # paho is resending what it held over a reconnect
        self.acked = 0
        self.totals = {label: spool.counter(f"total:{label}") for label in self.labels}
        self.state: dict[str, str] = {topics.alert: "OFF", topics.dropped: str(spool.dropped)}
        self._failures = 0
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_connect_fail, client.on_publish = self._on_connect_fail, self._on_publish
        client.on_message = self._on_message
        self.thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

    # paho's network thread: only put news in the inbox.
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._warn_once(f"refused ({reason})")
            return
        client.subscribe(self.topics.hass_status, qos=1)
        self.inbox.put(("connected", None))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.inbox.put(("disconnected", str(reason)))

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._warn_once("unreachable")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self.inbox.put(("ack", mid))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if message.topic == self.topics.hass_status and message.payload == ONLINE.encode():
            self.inbox.put(("announce", None))

    def _warn_once(self, what: str) -> None:
        self._failures += 1
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, "%s:%d: MQTT broker %s; events wait on disk in %s and go out when it is back",
                self.config.host, self.config.port, what, self.spool.path)

    # The sender thread.
    def _run(self) -> None:
        stopping = False
        while not stopping:
            stopping = self._process(timeout=0.5)
        self._drain(time.monotonic() + CLOSE_GRACE_SECONDS)
        self._shutdown()

    def _process(self, timeout: float) -> bool:
        """Handle what is in the inbox (waiting up to ``timeout``), commit, send; True on stop."""
        items: list[tuple[str, Any]] = []
        try:
            items.append(self.inbox.get(timeout=timeout))
            while True:
                items.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        stop = False
        for kind, value in items:
            stop = self._handle(kind, value) or stop
        self.spool.commit()
        self._send_pending()
        return stop

    def _handle(self, kind: str, value: Any) -> bool:
        if kind == "event":
            self._store(value)
        elif kind == "ack":
            seq = self.inflight.pop(value, None)
            if seq is not None:
                self.spool.remove([seq])
                self.acked += 1
        elif kind == "connected":
            log.info("%s:%d: MQTT connected as gate %s", self.config.host, self.config.port, self.topics.name)
            self.connected, self._failures = True, 0
            self.resending = bool(self.inflight)
            self._publish_state(announce=True)
        elif kind == "disconnected":
            if self.connected:
                log.warning("%s:%d: MQTT connection lost (%s); reconnecting in the background",
                            self.config.host, self.config.port, value)
            self.connected = False
        elif kind == "announce":
            self._publish_state(announce=True)
        elif kind == "state":
            topic, payload = value
            self.state[topic] = payload
            self._publish(topic, payload)
        return kind == "stop"

    def _store(self, event: CountEvent) -> None:
        payload = {"id": event.id, "gate": self.topics.name, "time": event.time, "class": event.label,
                   "confidence": round(event.confidence, 4), "track": event.track_id}
        dropped = self.spool.dropped
        self.spool.append(json.dumps(payload), keep_after=self.handed)
        self.totals[event.label] = self.totals.get(event.label, 0) + 1
        self.spool.set_counter(f"total:{event.label}", self.totals[event.label])
        self._publish(self.topics.total(event.label), str(self.totals[event.label]))
        if self.spool.dropped != dropped:
            self.state[self.topics.dropped] = str(self.spool.dropped)
            self._publish(self.topics.dropped, str(self.spool.dropped))

    def _publish(self, topic: str, payload: str) -> None:
        """A retained state message; only while connected (all of them are sent again on connect)."""
        if self.connected:
            self.client.publish(topic, payload, qos=1, retain=True)

    def _publish_state(self, announce: bool) -> None:
        if not self.connected:
            return
        self._publish(self.topics.availability, ONLINE)
        if announce and self.config.discovery:
            for topic, body in self.topics.discovery(self.labels, _version()).items():
                self._publish(topic, json.dumps(body))
        for label, total in self.totals.items():
            self._publish(self.topics.total(label), str(total))
        for topic, payload in self.state.items():
            self._publish(topic, payload)

    def _send_pending(self) -> None:
        # paho keeps what it was handed across reconnects and resends it in order; we add more only
        # while connected, so at most WINDOW events sit in memory.
        self.resending = self.resending and bool(self.inflight)
        # paho resends after its on_connect callback: a newer event published before that resend would
        # overtake the older ones, so newer events wait until the resent ones are acknowledged.
        if not self.connected or self.resending or len(self.inflight) >= WINDOW:
            return
        for seq, payload in self.spool.pending(self.handed, WINDOW - len(self.inflight)):
            info = self.client.publish(self.topics.event, payload, qos=1, retain=False)
            self.inflight[info.mid] = seq
            self.handed = seq

    def _drain(self, deadline: float) -> None:
        """At close, give acknowledgements of events already sent a moment to arrive."""
        while self.connected and self.inflight and time.monotonic() < deadline:
            self._process(timeout=0.1)

    def _shutdown(self) -> None:
        try:
            if self.connected:
                goodbye = self.client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
                goodbye.wait_for_publish(1.0)
            self.client.disconnect()
            self.client.loop_stop()
        finally:
            self.spool.close()
        if self.inflight:
            log.info("MQTT: %d events not yet acknowledged stay queued for the next start",
                     len(self.inflight))


class MqttOutput(Output):
    """Publishes each counted person, per-class totals, the alert state and frames/s to MQTT.

    Home Assistant finds the gate by MQTT discovery. The frame loop only puts news in a queue; a
    sender thread keeps events on disk (``<state_dir>/mqtt-spool.sqlite3``) until the broker
    acknowledges them, so a broker outage or a restart loses nothing (past ``queue_max_events``
    the oldest are dropped and counted in ``dropped``). paho's own thread connects and reconnects::

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
        spool = Spool(Path(state_dir) / SPOOL_FILE, max_events=config.queue_max_events)
        try:
            client = build_client(config, self.topics)
        except BaseException:
            spool.close()
            raise
        self.sender = MqttSender(config, self.topics, spool, tuple(labels), client)
        if len(spool):
            log.info("%s: %d events queued from before; they go out when the broker answers",
                     spool.path, len(spool))
        self._alert = False
        self._frames, self._fps_since = 0, clock()
        self._closed = False
        self.sender.thread.start()
        # connect_async + loop_start: name lookup, connect and every reconnect happen in paho's thread.
        client.connect_async(config.host, config.port, keepalive=config.keepalive)
        client.loop_start()

    @property
    def dropped(self) -> int:
        """Events dropped since the gate was set up because the on-disk queue was full."""
        return self.sender.spool.dropped

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
