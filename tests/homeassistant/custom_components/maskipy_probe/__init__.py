"""A test-only Home Assistant integration: every state change as one JSON line in ``<config>/states.jsonl``.

tests/test_home_assistant.py reads what Home Assistant shows (state, attributes, and the discovery
``unique_id`` from the entity registry) without the HTTP API and its authentication. Lines are written
in the event loop, in event order (an executor job could reorder them); the file is opened once, off
the loop, since Home Assistant flags a blocking ``open`` inside it. ``started`` and ``stopping`` lines
mark Home Assistant's own start and stop.
"""

from __future__ import annotations

import json
import time
from typing import IO, Any

from homeassistant.const import EVENT_HOMEASSISTANT_STARTED, EVENT_HOMEASSISTANT_STOP, EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.typing import ConfigType

DOMAIN = "maskipy_probe"


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    path = hass.config.path("states.jsonl")
    out: IO[str] = await hass.async_add_executor_job(open, path, "a", 1, "utf-8")
    registry = er.async_get(hass)

    def write(line: dict[str, Any]) -> None:
        out.write(json.dumps({"time": time.time(), **line}, default=str) + "\n")
        out.flush()

    @callback
    def on_state(event: Event) -> None:
        entity_id = event.data["entity_id"]
        new = event.data.get("new_state")
        entry = registry.async_get(entity_id)
        write({"event": "state", "entity_id": entity_id, "unique_id": entry.unique_id if entry else None,
               "platform": entry.platform if entry else None, "state": new.state if new else None,
               "attributes": dict(new.attributes) if new else None})

    @callback
    def on_started(event: Event) -> None:
        write({"event": "started"})

    @callback
    def on_stop(event: Event) -> None:
        write({"event": "stopping"})

    # Callbacks run in the event loop, in event order; a plain function would go to the executor.
    hass.bus.async_listen(EVENT_STATE_CHANGED, on_state)
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STARTED, on_started)
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, on_stop)
    return True
