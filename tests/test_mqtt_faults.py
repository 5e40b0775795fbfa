"""MQTT faults degrade MQTT alone: a full, read-only or damaged state disk, a bad host name, stale HA state.

The broker is a real Mosquitto on a free local port; a full or read-only disk is a real 1 MiB tmpfs
(the sqlite spool's WAL needs more room than conftest's 64 KiB one), skipped where the sandbox
cannot mount.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Tmpfs, wait_for

# The broker and recorder fixtures come from mqtt_broker too (conftest's pytest_plugins).
from mqtt_broker import (
    EVENTS,
    GATE,
    LABELS,
    Mosquitto,
    Recorder,
    needs_mosquitto,
)

from maskipy.edge.config import MqttConfig
from maskipy.edge.outputs.mqtt import SPOOL_FILE, MqttOutput
from maskipy.edge.outputs.spool import Spool
from maskipy.edge.tracking import CountEvent

pytestmark = needs_mosquitto


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Tmpfs]:
    """A 1 MiB tmpfs with a ``state`` folder; ``fill()``, ``free()``, ``readonly(flag)``."""
    path = tmp_path / "disk"
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    (path / "state").mkdir()
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that ended any thread during the test (paho's, the sender's)."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def make_output(port: int, state: Path, **changes: object) -> MqttOutput:
    config = MqttConfig(enabled=True, host="127.0.0.1", port=port, gate=GATE,
                        **{"reconnect_max_seconds": 1.0, **changes})
    return MqttOutput(config, state_dir=state, labels=LABELS, alert_classes=("unmasked",), hold_seconds=0.0)


def person(number: int, label: str = "unmasked") -> CountEvent:
    return CountEvent(time.time(), number, label, 0.9, (0, 0, 10, 10))


def ids_on(recorder: Recorder) -> list[str]:
    return [json.loads(m.payload)["id"] for m in recorder.on(EVENTS)]


def settled(output: MqttOutput, recorder: Recorder) -> None:
    """Every event so far acknowledged at both ends (gate to broker, broker to subscriber), so a broker
    stopped now holds nothing half-delivered: a duplicate after its restart is then the gate's own,
    not QoS 1's redelivery of a message whose acknowledgement the stopping broker never read."""
    assert wait_for(lambda: output.queued == 0 and not output.sender.inflight, timeout=10)
    recorder.settle()


def test_a_full_state_disk_and_a_broker_outage_lose_no_event_once_the_disk_has_room(
        broker: Mosquitto, recorder: Recorder, disk: Tmpfs, thread_errors: list, caplog) -> None:
    output = make_output(broker.port, disk.path / "state")
    sent = [person(n) for n in range(60)]
    for event in sent[:10]:
        output.on_count(event)
    assert len(recorder.wait_for(EVENTS, 10, timeout=10)) == 10
    settled(output, recorder)
    broker.stop()
    disk.fill()
    with caplog.at_level(logging.WARNING):
        for event in sent[10:40]:
            output.on_count(event)
            time.sleep(0.01)
        assert wait_for(lambda: output.degraded is not None, timeout=5), "the full disk is noticed"
    assert output.degraded.startswith("mqtt: degraded") and "full" in output.degraded
    assert output.sender.thread.is_alive() and not thread_errors
    assert "Traceback" not in caplog.text
    disk.free()
    assert wait_for(lambda: output.degraded is None, timeout=10), "back on disk once it has room"
    for event in sent[40:50]:
        output.on_count(event)
    broker.start()
    for event in sent[50:]:
        output.on_count(event)
    recorder.wait_for(EVENTS, len(sent), timeout=20)
    output.close()
    assert ids_on(recorder) == [e.id for e in sent], "every event once, in order"
    assert not thread_errors


@pytest.mark.parametrize("back_first", ["broker", "disk"])
def test_the_whole_gate_loses_and_repeats_no_event_over_a_broker_outage_on_a_full_disk(
        back_first: str, broker: Mosquitto, recorder: Recorder, disk: Tmpfs, thread_errors: list,
        caplog) -> None:
    """The issue's goal, its 60 s outage shortened: the broker down and the state disk full at once, the
    count log and the MQTT spool both on it, people counted all along. Once the disk has room and the
    broker is back, every event reaches a persistent-session subscriber exactly once and in order, and
    events.jsonl, totals.json and the MQTT totals all equal the events. ``back_first``: which fault
    ends first (the broker: the backlog goes out of memory while the disk is still full)."""
    from collections import Counter

    from maskipy.edge.config import load_edge_config
    from maskipy.edge.outputs import build_outputs, close_outputs
    from maskipy.edge.outputs.counts import read_events

    state = disk.path / "state"
    ini = disk.path.parent / "config.ini"
    ini.write_text(f"[outputs]\ndevices = log\n[counts]\nstate_dir = {state}\n[mqtt]\nenabled = yes\n"
                   f"host = 127.0.0.1\nport = {broker.port}\ngate = {GATE}\nreconnect_max_seconds = 1\n")
    outputs = build_outputs(load_edge_config(ini))
    count_log, mqtt = (next(o for o in outputs if o.name == name) for name in ("log", "mqtt"))
    sent = [person(n, LABELS[n % 3]) for n in range(90)]

    def count(events: list[CountEvent]) -> None:  # what the frame loop does for each counted person
        for event in events:
            for output in outputs:
                output.on_count(event)
            time.sleep(0.01)

    count(sent[:10])
    recorder.wait_for(EVENTS, 10, timeout=10)
    settled(mqtt, recorder)
    broker.stop()
    disk.fill()
    with caplog.at_level(logging.WARNING):
        count(sent[10:40])
        assert wait_for(lambda: mqtt.degraded is not None, timeout=5), "the full disk is noticed"
        assert count_log.degraded is not None and "full" in mqtt.degraded
        if back_first == "broker":
            broker.start()
            count(sent[40:60])
            recorder.wait_for(EVENTS, 60, timeout=20)
            assert len(ids_on(recorder)) == 60, "the backlog goes out of memory while the disk is full"
            assert mqtt.degraded is not None, "the disk is still full"
            disk.free()
        else:
            disk.free()
            count(sent[40:60])
            assert wait_for(lambda: mqtt.degraded is None, timeout=10), "back on disk once it has room"
            broker.start()
        count(sent[60:])
        recorder.wait_for(EVENTS, len(sent), timeout=20)
        assert wait_for(lambda: mqtt.degraded is None and mqtt.queued == 0, timeout=10)
    assert count_log.degraded is None
    close_outputs(outputs)
    assert "Traceback" not in caplog.text and not thread_errors
    assert ids_on(recorder) == [e.id for e in sent], "every event exactly once, in order"
    expected = Counter(e.label for e in sent)
    for label in LABELS:
        assert recorder.on(f"maskipy/{GATE}/totals/{label}")[-1].payload == str(expected[label]).encode()
    assert [e["id"] for e in read_events([state / "events.jsonl"])] == [e.id for e in sent]
    saved = json.loads((state / "totals.json").read_text())
    assert sum(map(Counter, saved["days"].values()), Counter()) == expected, "totals equal the events"


def test_the_outage_bench_with_a_full_disk_writes_its_json(disk: Tmpfs, tmp_path: Path) -> None:
    import mqtt_outage  # bench/, on the path through mqtt_broker

    out = tmp_path / "mqtt_outage_full_disk.json"  # ``disk``: skipped where the sandbox cannot mount
    code = mqtt_outage.main(["--before", "0.5", "--outage", "2", "--after", "1", "--rate", "10",
                             "--full-disk", "2.5", "--disk-mib", "2", "--fps-rounds", "0",
                             "--json", str(out)])
    data = json.loads(out.read_text())
    o, d = data["outage"], data["outage"]["full_disk"]
    assert code == 0 and o["lost"] == 0 and o["duplicates"] == 0 and o["in_order"]
    assert d["mqtt_degraded_s"] and d["count_log_degraded_s"], "the disk really was full"
    assert d["events_logged"] == o["sent"] and d["totals_json_equal_events"] and d["mqtt_totals_equal_events"]
    assert data["settings"]["full_disk_s"] == 2.5 and len(data["model_sha256"]) == 64 and data["commit"]


def test_events_reach_the_broker_from_memory_while_the_state_disk_is_full_at_start(
        broker: Mosquitto, recorder: Recorder, disk: Tmpfs, thread_errors: list) -> None:
    disk.fill()
    output = make_output(broker.port, disk.path / "state")  # the gate starts: LEDs and counting go on
    assert output.degraded is not None and "full" in output.degraded
    sent = [person(n) for n in range(30)]
    for event in sent:
        output.on_count(event)
    recorder.wait_for(EVENTS, len(sent), timeout=15)
    assert recorder.on(f"maskipy/{GATE}/totals/unmasked")[-1].payload == b"30"
    output.close()
    assert ids_on(recorder) == [e.id for e in sent] and not thread_errors


def test_a_read_only_state_dir_runs_mqtt_in_memory(broker: Mosquitto, recorder: Recorder, disk: Tmpfs,
                                                   thread_errors: list) -> None:
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.outputs import build_outputs, close_outputs

    ini = disk.path.parent / "config.ini"
    ini.write_text(f"[outputs]\ndevices = log\n[counts]\nstate_dir = {disk.path / 'state'}\n"
                   f"[mqtt]\nenabled = yes\nhost = 127.0.0.1\nport = {broker.port}\ngate = {GATE}\n")
    disk.readonly(True)
    try:
        outputs = build_outputs(load_edge_config(ini))
        mqtt = next(o for o in outputs if o.name == "mqtt")
        assert "read-only" in mqtt.degraded
        mqtt.on_count(event := person(1))
        recorder.wait_for(EVENTS, 1, timeout=10)
        close_outputs(outputs)
    finally:
        disk.readonly(False)
    assert ids_on(recorder) == [event.id] and not thread_errors


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_spool_is_set_aside_and_replaced(broker: Mosquitto, recorder: Recorder, tmp_path: Path,
                                                   damage: str, caplog) -> None:
    state = tmp_path / "state"
    state.mkdir()
    spool_path = state / SPOOL_FILE
    if damage == "garbage":
        spool_path.write_bytes(b"not a database, just bytes\n" * 200)
    else:
        spool = Spool(spool_path, max_events=10_000)
        for number in range(2000):
            spool.append(json.dumps({"id": f"old-{number}", "pad": "x" * 200}))
        spool.close()
        with open(spool_path, "r+b") as handle:
            handle.truncate(handle.seek(0, 2) // 2)
    with caplog.at_level(logging.WARNING):
        output = make_output(broker.port, state)
    assert "set aside" in caplog.text
    assert list(state.glob(f"{SPOOL_FILE}.damaged-*")), "the damaged file is kept for a look"
    output.on_count(event := person(1))
    recorder.wait_for(EVENTS, 1, timeout=10)
    output.close()
    assert ids_on(recorder) == [event.id] and output.degraded is None
    assert len(Spool(spool_path, max_events=10)) == 0, "a fresh, working spool in its place"


def test_a_host_name_over_63_characters_degrades_mqtt_without_a_traceback(
        tmp_path: Path, thread_errors: list, caplog) -> None:
    host = "a" * 64 + ".example.org"
    with caplog.at_level(logging.WARNING):
        output = MqttOutput(MqttConfig(enabled=True, host=host, gate=GATE), state_dir=tmp_path / "state",
                            labels=LABELS, alert_classes=())
        output.on_count(person(1))
        time.sleep(1.0)
        degraded = output.degraded
        output.close()
    assert not thread_errors, f"a thread died: {thread_errors!r}"
    assert degraded is not None and degraded.startswith("mqtt: degraded") and "host" in degraded
    assert "Traceback" not in caplog.text
    assert len(Spool(tmp_path / "state" / SPOOL_FILE, max_events=10)) == 1, "kept for a fixed config"


def home_assistant_view(messages: list) -> list[tuple[str, str | None, str | None]]:
    """(availability, alert, fps) as an HA entity shows them after each message, in arrival order."""
    seen: dict[str, str | None] = {"availability": None, "alert": None, "fps": None}
    views = []
    for message in messages:
        key = message.topic.rsplit("/", 1)[1]
        if key in seen:
            seen[key] = message.payload.decode()
            views.append((seen["availability"], seen["alert"], seen["fps"]))
    return views


def test_home_assistant_sees_the_corrected_alert_and_no_stale_fps_once_online(
        broker: Mosquitto, tmp_path: Path) -> None:
    # The last run ended during an alert: ON, its frames/s and offline (the will) are retained.
    previous = Recorder(broker.port, topics=("unused",), client_id="previous-run").start()
    for topic, payload in (("alert", "ON"), ("fps", "12.50"), ("availability", "offline")):
        previous.client.publish(f"maskipy/{GATE}/{topic}", payload, qos=1, retain=True).wait_for_publish(5)
    previous.stop()
    ha = Recorder(broker.port, topics=(f"maskipy/{GATE}/#",), client_id="home-assistant").start()
    ha.wait_for(f"maskipy/{GATE}/availability", 1, timeout=5)
    output = make_output(broker.port, tmp_path / "state")
    ha.wait_for(f"maskipy/{GATE}/availability", 2, timeout=10)
    time.sleep(0.5)
    output.close()
    ha.stop()
    online = [view for view in home_assistant_view(ha.messages) if view[0] == "online"]
    assert online, "the gate came online"
    assert all(alert == "OFF" for _, alert, _ in online), f"HA saw the old alert while online: {online}"
    assert all(fps != "12.50" for _, _, fps in online), f"HA saw the previous run's frames/s: {online}"


def test_status_line_and_status_json_say_mqtt_is_degraded(tmp_path: Path, default_bundle: Path,
                                                          scenes_dir: Path) -> None:
    import urllib.request

    from maskipy.edge.config import load_edge_config
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier

    ini = tmp_path / "config.ini"
    ini.write_text(f"[outputs]\ndevices = null\n[counts]\nstate_dir = {tmp_path / 'state'}\n"
                   f"[http]\nenabled = yes\nport = 0\n[mqtt]\nenabled = yes\nhost = {'b' * 70}\n")
    runtime = EdgeRuntime(load_edge_config(ini), source=str(scenes_dir), model=default_bundle,
                          notifier=SystemdNotifier(""))
    try:
        for _ in range(3):
            runtime.process(runtime.capture())
        page = next(o for o in runtime.outputs if o.name == "http")
        with urllib.request.urlopen(page.server.url + "status.json", timeout=10) as response:
            data = json.loads(response.read())
    finally:
        runtime.close()
    assert "DEGRADED (mqtt: degraded" in runtime.status_line()
    assert data["outputs"]["mqtt"]["state"] == "degraded" and "host" in data["outputs"]["mqtt"]["why"]
    assert any(p.startswith("mqtt: degraded") for p in data["problems"])

