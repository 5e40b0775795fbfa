"""The gate's MQTT topics and its Home Assistant discovery messages (one device per gate)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from ..config import MqttConfig

ONLINE, OFFLINE = "online", "offline"


def gate_id(name: str) -> str:
    """A topic- and id-safe form of a gate name: letters, digits, _ and - only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "gate"


@dataclass(frozen=True)
class GateTopics:
    """Where one gate publishes: ``<prefix>/<gate>/...`` and its discovery configs.

    ========================  =========  ========================================================
    topic                     retained   payload
    ========================  =========  ========================================================
    .../availability          yes        ``online`` / ``offline`` (the last will)
    .../event                 no         JSON per counted person (id, gate, time, class, ...)
    .../totals/<class>        yes        people counted in that class since the gate was set up
    .../alert                 yes        ``ON`` while an alert class is at the gate, else ``OFF``
    .../fps                   yes        frames per second of the frame loop
    .../dropped               yes        events dropped because the on-disk queue was full
    ========================  =========  ========================================================
    """

    name: str
    id: str
    base: str
    discovery_prefix: str

    @classmethod
    def from_config(cls, config: MqttConfig) -> GateTopics:
        name = config.gate or socket.gethostname()
        ident = gate_id(name)
        return cls(name, ident, f"{config.topic_prefix}/{ident}", config.discovery_prefix)

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    def total(self, label: str) -> str:
        return f"{self.base}/totals/{label}"

    @property
    def alert(self) -> str:
        return f"{self.base}/alert"

    @property
    def fps(self) -> str:
        return f"{self.base}/fps"

    @property
    def dropped(self) -> str:
        return f"{self.base}/dropped"

    @property
    def hass_status(self) -> str:
        """Home Assistant publishes ``online`` here when it starts: time to announce again."""
        return f"{self.discovery_prefix}/status"

    def discovery(self, labels: tuple[str, ...], version: str) -> dict[str, dict[str, object]]:
        """Discovery config topic -> payload: a counter per class, the alert, frames/s, dropped."""
        device = {"identifiers": [f"maskipy_{self.id}"], "name": f"maskipy {self.name}",
                  "manufacturer": "maskipy", "model": "mask-wearing gate", "sw_version": version}
        common = {"availability_topic": self.availability, "payload_available": ONLINE,
                  "payload_not_available": OFFLINE, "device": device}
        configs: dict[str, dict[str, object]] = {}
        for label in labels:
            configs[self._config_topic("sensor", label)] = {
                **common, "name": label.replace("_", " ").capitalize(),
                "unique_id": f"maskipy_{self.id}_{label}", "state_topic": self.total(label),
                "state_class": "total_increasing", "unit_of_measurement": "people",
                "icon": "mdi:account-multiple"}
        configs[self._config_topic("binary_sensor", "alert")] = {
            **common, "name": "Alert", "unique_id": f"maskipy_{self.id}_alert", "state_topic": self.alert,
            "payload_on": "ON", "payload_off": "OFF", "device_class": "problem"}
        configs[self._config_topic("sensor", "fps")] = {
            **common, "name": "Frames per second", "unique_id": f"maskipy_{self.id}_fps",
            "state_topic": self.fps, "state_class": "measurement", "unit_of_measurement": "fps",
            "entity_category": "diagnostic"}
        configs[self._config_topic("sensor", "dropped")] = {
            **common, "name": "Dropped MQTT events", "unique_id": f"maskipy_{self.id}_dropped",
            "state_topic": self.dropped, "state_class": "total_increasing", "entity_category": "diagnostic"}
        return configs

    def _config_topic(self, component: str, key: str) -> str:
        return f"{self.discovery_prefix}/{component}/maskipy_{self.id}/{key}/config"
