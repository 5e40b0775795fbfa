"""The MQTT sender thread: the spool in, the broker out; faults degrade it, never end it."""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..config import MqttConfig
from ..tracking import CountEvent
from .hass import OFFLINE, ONLINE, GateTopics
from .spool import Spool, SpoolKeeper

log = logging.getLogger(__name__)

# Events handed to the MQTT client at once; the rest wait in the spool, so memory stays small.
WINDOW = 20
CLOSE_GRACE_SECONDS = 2.0
# Home Assistant's MQTT sensor shows "unknown" for this payload: frames/s before the first window.
UNKNOWN = "None"


def _version() -> str:
    from ..cli_runner import package_version

    return package_version()


class PahoNews:
    """paho's callbacks, run in paho's network thread: they only put news in the sender's inbox."""

    config: MqttConfig
    topics: GateTopics
    inbox: queue.Queue[tuple[str, Any]]
    spool: Spool
    _failures: int

    def wire(self, client: Any) -> None:
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_connect_fail, client.on_publish = self._on_connect_fail, self._on_publish
        client.on_message = self._on_message

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
        log.log(level, "%s:%d: MQTT broker %s; events wait in %s and go out when it is back",
                self.config.host, self.config.port, what, self.spool.where)


class MqttSender(PahoNews):
    """The thread between the frame loop and the broker: it owns the spool and the paho client.

    Everything reaches it through ``inbox`` (events from the frame loop, acknowledgements and
    connection news from paho's network thread), so neither the frame loop nor paho ever waits on
    the other or on the disk. Events go out in spool order, ``WINDOW`` at a time; each is removed
    from the spool only when the broker acknowledged it (PUBACK). When the disk refuses the spool
    it moves to memory (``SpoolKeeper``); an unexpected error is logged and retried with backoff.
    ``degraded`` says what is wrong, or None.
    """

    def __init__(self, config: MqttConfig, topics: GateTopics, keeper: SpoolKeeper, labels: Sequence[str],
                 client: Any) -> None:
        self.config, self.topics, self.keeper, self.client = config, topics, keeper, client
        self.labels = tuple(labels)
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.inflight: dict[int, int] = {}  # paho mid -> spool seq
        self.new: list[str] = []  # events not yet committed to the spool
        self.done: list[int] = []  # acknowledged seqs not yet removed from it
        self.connected = False
        self.resending = False  # paho is resending what it held over a reconnect
        self.acked = 0
        self.fault: str | None = None  # an unexpected error in the last turn
        self.totals = {label: self.spool.counter(f"total:{label}") for label in self.labels}
        # Published before ``online`` on every connect: the alert of a run that ended during one and
        # the last run's frames/s are never shown as this run's.
        self.state: dict[str, str] = {topics.alert: "OFF", topics.fps: UNKNOWN,
                                      topics.dropped: str(self.spool.dropped)}
        self._failures = 0
        self.wire(client)
        self.thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

    @property
    def spool(self) -> Spool:
        return self.keeper.spool

    @property
    def degraded(self) -> str | None:
        if self.keeper.why is not None:
            return (f"mqtt: degraded, {self.keeper.why}: events kept in memory (up to "
                    f"{self.spool.max_events}) until the disk takes them")
        return f"mqtt: degraded, {self.fault}" if self.fault else None

    # The sender thread.
    def _run(self) -> None:
        stopping, delay = False, 1.0
        while not stopping:
            try:
                stopping = self._process(timeout=0.5)
                self.fault, delay = None, 1.0
            # One bad turn must not end the thread: MQTT degrades, the gate goes on, the next turn retries.
            except Exception as exc:
                self.fault = f"sender error ({type(exc).__name__}: {exc}); retrying"
                log.error("MQTT sender: %s: %s; retrying in %.0f s", type(exc).__name__, exc, delay,
                          exc_info=delay == 1.0)
                time.sleep(delay)
                delay = min(2 * delay, max(1.0, self.config.reconnect_max_seconds))
        try:
            self._drain(time.monotonic() + CLOSE_GRACE_SECONDS)
        finally:
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
        self._with_spool(self._save)
        if self.keeper.retry():
            self._counters_moved()
        self._with_spool(self._send_pending)
        return stop

    def _handle(self, kind: str, value: Any) -> bool:
        if kind == "event":
            self._store(value)
        elif kind == "ack":
            seq = self.inflight.pop(value, None)
            if seq is not None:
                self.done.append(seq)
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
        self.new.append(json.dumps(payload))
        self.totals[event.label] = self.totals.get(event.label, 0) + 1
        self._publish(self.topics.total(event.label), str(self.totals[event.label]))

    def _with_spool(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the spool; if the disk refuses, move the spool to memory and run it again."""
        try:
            action()
        except sqlite3.Error as exc:
            self.keeper.fall_back(exc, floor=max(self.inflight.values(), default=0))
            action()

    def _save(self) -> None:
        """Commit the new events, the acknowledged ones' removal and the totals in one transaction."""
        if not self.new and not self.done:
            return
        spool, dropped = self.spool, self.spool.dropped
        try:
            keep = set(self.inflight.values())
            for payload in self.new:
                spool.append(payload, keep=keep)
            spool.remove(self.done)
            for label, total in self.totals.items():
                spool.set_counter(f"total:{label}", total)
            spool.commit()
        except sqlite3.Error:
            spool.rollback()
            raise
        self.new.clear()
        self.done.clear()
        if spool.dropped != dropped:
            self.state[self.topics.dropped] = str(spool.dropped)
            self._publish(self.topics.dropped, str(spool.dropped))

    def _counters_moved(self) -> None:
        """Back on disk: totals and drops are the disk's now (counted on from there)."""
        self.totals = {label: self.spool.counter(f"total:{label}") for label in self.labels}
        self.state[self.topics.dropped] = str(self.spool.dropped)
        self._publish_state(announce=False)

    def _publish(self, topic: str, payload: str) -> None:
        """A retained state message; only while connected (all of them are sent again on connect)."""
        if self.connected:
            self.client.publish(topic, payload, qos=1, retain=True)

    def _publish_state(self, announce: bool) -> None:
        """Discovery, totals and state first, ``online`` last: HA never shows a stale value as live."""
        if not self.connected:
            return
        if announce and self.config.discovery:
            for topic, body in self.topics.discovery(self.labels, _version()).items():
                self._publish(topic, json.dumps(body))
        for label, total in self.totals.items():
            self._publish(self.topics.total(label), str(total))
        for topic, payload in self.state.items():
            self._publish(topic, payload)
        self._publish(self.topics.availability, ONLINE)

    def _send_pending(self) -> None:
        # paho keeps what it was handed across reconnects and resends it in order; we add more only
        # while connected, so at most WINDOW events sit in paho's memory.
        self.resending = self.resending and bool(self.inflight)
        # paho resends after its on_connect callback: a newer event published before that resend would
        # overtake the older ones, so newer events wait until the resent ones are acknowledged.
        if not self.connected or self.resending or len(self.inflight) >= WINDOW:
            return
        handed = {*self.inflight.values(), *self.done}
        for seq, payload in self.spool.pending(WINDOW - len(self.inflight), skip=handed):
            info = self.client.publish(self.topics.event, payload, qos=1, retain=False)
            self.inflight[info.mid] = seq

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
            self._with_spool(self._save)
            self.keeper.close()
        if self.inflight:
            log.info("MQTT: %d events not yet acknowledged stay queued for the next start",
                     len(self.inflight))
