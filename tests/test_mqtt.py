"""The MQTT output against a real Mosquitto on a free local port: events, discovery, outages, the bound."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# The broker and recorder fixtures come from mqtt_broker too (conftest's pytest_plugins).
from mqtt_broker import (
    EVENTS,
    GATE,
    LABELS,
    Mosquitto,
    Recorder,
    free_port,
    make_tls_files,
    needs_mosquitto,
)

from maskipy.edge.config import MqttConfig, load_edge_config
from maskipy.edge.errors import ConfigError
from maskipy.edge.outputs import build_outputs, close_outputs
from maskipy.edge.outputs.mqtt import MqttOutput
from maskipy.edge.tracking import CountEvent, Track

pytestmark = needs_mosquitto


def make_output(port: int, state: Path, **changes: object) -> MqttOutput:
    config = MqttConfig(enabled=True, host="127.0.0.1", port=port, gate=GATE, **changes)
    return MqttOutput(config, state_dir=state, labels=LABELS, alert_classes=("unmasked",), hold_seconds=0.0)


def person(number: int, label: str = "unmasked") -> CountEvent:
    return CountEvent(time.time(), number, label, 0.9, (0, 0, 10, 10))


def tracks_of(messages: list) -> list[int]:
    return [json.loads(m.payload)["track"] for m in messages]


def test_events_arrive_with_their_fields_and_totals_are_retained(broker: Mosquitto, recorder: Recorder,
                                                                  tmp_path: Path) -> None:
    output = make_output(broker.port, tmp_path / "state")
    events = [person(1, "unmasked"), person(2, "properly_masked"), person(3, "unmasked")]
    for event in events:
        output.on_count(event)
    received = recorder.wait_for(EVENTS, 3, timeout=10)
    output.close()
    bodies = [json.loads(m.payload) for m in received]
    assert [b["id"] for b in bodies] == [e.id for e in events]
    assert bodies[0] == {"id": events[0].id, "gate": GATE, "time": events[0].time, "class": "unmasked",
                         "confidence": 0.9, "track": 1}
    # A consumer that connects later still gets the totals: they are retained.
    late = Recorder(broker.port, topics=(f"maskipy/{GATE}/totals/#",), client_id="late").start()
    totals = {m.topic.rsplit("/", 1)[1]: int(m.payload) for m in late.wait_for(
        f"maskipy/{GATE}/totals/unmasked", 1, timeout=5) + late.on(f"maskipy/{GATE}/totals/properly_masked")}
    late.stop()
    assert totals == {"unmasked": 2, "properly_masked": 1}
    assert all(m.retain for m in late.messages)
    assert recorder.on(f"maskipy/{GATE}/availability")[-1].payload == b"offline", "close says offline"


def test_discovery_describes_one_device_with_counters_alert_and_fps(broker: Mosquitto, recorder: Recorder,
                                                                    tmp_path: Path) -> None:
    output = make_output(broker.port, tmp_path / "state")
    prefix = f"homeassistant/sensor/maskipy_{GATE}"
    recorder.wait_for(f"{prefix}/fps/config", 1, timeout=10)
    configs = {m.topic: json.loads(m.payload) for m in recorder.messages if m.topic.endswith("/config")}
    output.close()
    counters = {f"{prefix}/{label}/config" for label in LABELS}
    alert = f"homeassistant/binary_sensor/maskipy_{GATE}/alert/config"
    assert counters | {alert, f"{prefix}/fps/config"} <= set(configs)
    for topic, body in configs.items():
        for key in ("name", "unique_id", "state_topic", "device", "availability_topic"):
            assert body.get(key), f"{topic}: {key} missing"
        assert body["device"]["identifiers"] == [f"maskipy_{GATE}"], "one device per gate"
    assert {configs[t]["state_class"] for t in counters} == {"total_increasing"}
    assert configs[counters.pop()]["state_topic"].startswith(f"maskipy/{GATE}/totals/")
    assert configs[alert]["state_topic"] == f"maskipy/{GATE}/alert"
    assert len({body["unique_id"] for body in configs.values()}) == len(configs)


def test_discovery_is_announced_again_when_home_assistant_comes_online(
        broker: Mosquitto, recorder: Recorder, tmp_path: Path) -> None:
    output = make_output(broker.port, tmp_path / "state")
    topic = f"homeassistant/binary_sensor/maskipy_{GATE}/alert/config"
    assert len(recorder.wait_for(topic, 1, timeout=10)) == 1
    recorder.client.publish("homeassistant/status", "online", qos=1)
    announced = recorder.wait_for(topic, 2, timeout=10)
    output.close()
    assert len(announced) == 2


def test_alert_follows_the_tracks_and_fps_is_published(broker: Mosquitto, recorder: Recorder,
                                                       tmp_path: Path) -> None:
    output = make_output(broker.port, tmp_path / "state", fps_seconds=1.0)
    unmasked = Track(1, (0, 0, 10, 10), 0.0, 0.0, votes=None, label="unmasked")  # type: ignore[arg-type]
    alert = f"maskipy/{GATE}/alert"
    recorder.wait_for(alert, 1, timeout=10)
    output.on_frame([unmasked], None)  # type: ignore[arg-type]
    time.sleep(0.05)
    output.on_frame([], None)  # type: ignore[arg-type]
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        output.on_frame([], None)  # type: ignore[arg-type]
        time.sleep(0.01)
    assert [m.payload for m in recorder.wait_for(alert, 3, timeout=5)] == [b"OFF", b"ON", b"OFF"]
    fps = recorder.wait_for(f"maskipy/{GATE}/fps", 2, timeout=5)
    output.close()
    assert fps[0].payload == b"None", "unknown until the first window: not the last run's rate"
    assert len(fps) == 2 and 10 < float(fps[1].payload) < 200


def test_last_will_says_offline_when_the_gate_dies(broker: Mosquitto, recorder: Recorder,
                                                   tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        from maskipy.edge.config import MqttConfig
        from maskipy.edge.outputs.mqtt import MqttOutput
        MqttOutput(MqttConfig(enabled=True, host="127.0.0.1", port={broker.port}, gate="{GATE}"),
                   state_dir="{tmp_path / 'state'}", labels=("unmasked",), alert_classes=())
        time.sleep(60)
    """)
    gate = subprocess.Popen([sys.executable, "-c", script])
    availability = f"maskipy/{GATE}/availability"
    try:
        assert [m.payload for m in recorder.wait_for(availability, 1, timeout=20)] == [b"online"]
    finally:
        gate.kill()
        gate.wait()
    assert recorder.wait_for(availability, 2, timeout=10)[-1].payload == b"offline"
    late = Recorder(broker.port, topics=(availability,), client_id="late").start()
    retained = late.wait_for(availability, 1, timeout=5)
    late.stop()
    assert retained[0].payload == b"offline" and retained[0].retain


def test_every_event_arrives_once_and_in_order_across_a_broker_outage(
        broker: Mosquitto, recorder: Recorder, tmp_path: Path) -> None:
    output = make_output(broker.port, tmp_path / "state", reconnect_max_seconds=1.0)
    sent = []
    for number in range(120):
        if number == 40:
            broker.stop()  # mid-stream, for about 5 s of events
        if number == 100:
            assert output.queued >= 40, output.queued  # what /metrics serves as maskipy_mqtt_queued_events
            broker.start()
        event = person(number)
        sent.append(event.id)
        output.on_count(event)
        time.sleep(0.05)
    received = recorder.wait_for(EVENTS, len(sent), timeout=30)
    time.sleep(1.0)  # a late duplicate would show up here
    queued_after = output.queued
    output.close()
    ids = [json.loads(m.payload)["id"] for m in recorder.on(EVENTS)]
    assert len(ids) == len(set(ids)), "no duplicates"
    assert ids == sent, f"lost: {len(set(sent) - set(ids))}, received {len(received)}"
    assert queued_after == 0


def test_events_in_flight_when_the_broker_dies_are_resent_before_newer_ones(
        broker: Mosquitto, recorder: Recorder, tmp_path: Path) -> None:
    output = make_output(broker.port, tmp_path / "state", reconnect_max_seconds=1.0)
    events = [person(n) for n in range(40)]
    for event in events[:10]:
        output.on_count(event)
    recorder.wait_for(EVENTS, 10, timeout=10)
    # The recorder's session must be on disk before the kill -9, or the restarted broker drops the
    # resent events before the recorder subscribes again (a fixed 1.5 s sleep lost that race under load).
    broker.wait_for_autosave(after=time.time() + 0.01)
    broker.process.send_signal(signal.SIGSTOP)  # a hung broker: events go out, no PUBACK comes back
    for event in events[10:20]:
        output.on_count(event)
    deadline = time.monotonic() + 5
    while len(output.sender.inflight) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(output.sender.inflight) == 10, "sent and waiting for their acknowledgement"
    broker.process.kill()
    broker.process.wait()
    broker.start()
    for event in events[20:]:  # counted while the gate reconnects and paho resends the ten
        output.on_count(event)
        time.sleep(0.05)
    recorder.wait_for(EVENTS, 40, timeout=20)
    time.sleep(0.5)
    output.close()
    assert [json.loads(m.payload)["id"] for m in recorder.on(EVENTS)] == [e.id for e in events]


def test_a_restarted_gate_sends_what_it_queued_while_the_broker_was_away(
        broker: Mosquitto, recorder: Recorder, tmp_path: Path) -> None:
    broker.stop()
    before = make_output(broker.port, tmp_path / "state")
    events = [person(n) for n in range(10)]
    for event in events:
        before.on_count(event)
    before.close()
    broker.start()
    after = make_output(broker.port, tmp_path / "state")
    received = recorder.wait_for(EVENTS, 10, timeout=20)
    after.on_count(later := person(10))
    received = recorder.wait_for(EVENTS, 11, timeout=10)
    after.close()
    assert [json.loads(m.payload)["id"] for m in received] == [e.id for e in [*events, later]]
    assert recorder.on(f"maskipy/{GATE}/totals/unmasked")[-1].payload == b"11", "totals survive the restart"


def test_a_full_queue_drops_the_oldest_and_counts_them(
        broker: Mosquitto, recorder: Recorder, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker.stop()
    output = make_output(broker.port, tmp_path / "state", queue_max_events=100)
    events = [person(n) for n in range(130)]
    with caplog.at_level(logging.WARNING):
        for event in events:
            output.on_count(event)
        output.close()
    assert output.dropped == 30
    assert "dropped the oldest" in caplog.text
    broker.start()
    again = make_output(broker.port, tmp_path / "state", queue_max_events=100)
    received = recorder.wait_for(EVENTS, 100, timeout=20)
    time.sleep(0.5)
    dropped = recorder.wait_for(f"maskipy/{GATE}/dropped", 1, timeout=5)
    again.close()
    assert [json.loads(m.payload)["id"] for m in recorder.on(EVENTS)] == [e.id for e in events[30:]]
    assert len(received) == 100 and dropped[-1].payload == b"30" and again.dropped == 30


def test_the_frame_loop_never_waits_on_an_unreachable_broker(tmp_path: Path) -> None:
    # 10.255.255.1 is not routed: a connect there hangs until its timeout, in paho's thread only.
    config = MqttConfig(enabled=True, host="10.255.255.1", port=free_port(), gate=GATE)
    output = MqttOutput(config, state_dir=tmp_path / "state", labels=LABELS, alert_classes=("unmasked",))
    started = time.perf_counter()
    for number in range(100):
        output.on_count(person(number))
        output.on_frame([], None)  # type: ignore[arg-type]
    took = time.perf_counter() - started
    output.close()
    assert took < 1.0, f"100 counts took {took:.2f} s with the broker unreachable"
    from maskipy.edge.outputs.spool import Spool

    assert len(Spool(tmp_path / "state" / "mqtt-spool.sqlite3", max_events=1000)) == 100


def test_a_password_broker_accepts_the_configured_user(tmp_path: Path) -> None:
    server = Mosquitto(tmp_path / "broker", users={"gate": "s3cret"})
    server.start()
    try:
        output = make_output(server.port, tmp_path / "state", username="gate", password="s3cret")
        output.on_count(event := person(1))
        deadline = time.monotonic() + 10
        while output.sender.acked < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        output.close()
        assert output.sender.acked == 1, f"{event.id} not acknowledged by the broker"
        wrong = make_output(server.port, tmp_path / "state2", username="gate", password="nope")
        wrong.on_count(person(2))
        time.sleep(1.5)
        wrong.close()
        assert wrong.sender.acked == 0 and not wrong.sender.connected
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed (makes the test CA)")
def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    from maskipy.edge.errors import OutputError
    from maskipy.edge.outputs.mqtt import probe_broker

    files = make_tls_files(tmp_path / "tls")
    server = Mosquitto(tmp_path / "broker", tls=files)
    server.start()
    try:
        output = make_output(server.port, tmp_path / "state", tls=True, ca_file=files["ca"])
        output.on_count(person(1))
        deadline = time.monotonic() + 10
        while output.sender.acked < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        output.close()
        assert output.sender.acked == 1, "the event went out over TLS and was acknowledged"
        # Without the private CA the broker's certificate is not trusted: a clear error, no traceback.
        with pytest.raises(OutputError, match=r"cannot connect .*CERTIFICATE_VERIFY_FAILED"):
            probe_broker(MqttConfig(enabled=True, host="127.0.0.1", port=server.port, tls=True))
    finally:
        server.stop()


def test_mqtt_config_is_checked_and_builds_the_output(tmp_path: Path) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text(f"[outputs]\ndevices = null\n[counts]\nstate_dir = {tmp_path / 'state'}\n"
                   f"[mqtt]\nenabled = yes\nhost = 127.0.0.1\nport = {free_port()}\ngate = {GATE}\n")
    config = load_edge_config(ini)
    outputs = build_outputs(config)
    try:
        assert [o.name for o in outputs] == ["mqtt", "null"]
    finally:
        close_outputs(outputs)
    for body, message in (("hostname = x", "unknown key"), ("tls = yes\ncert_file = /etc/hostname",
                                                              "cert_file and key_file"),
                          ("topic_prefix = maskipy/#", "not a topic level"), ("port = 0", "out of range")):
        ini.write_text(f"[mqtt]\nenabled = yes\n{body}\n")
        with pytest.raises(ConfigError, match=message):
            load_edge_config(ini)


def test_the_outage_bench_writes_its_json(tmp_path: Path) -> None:
    import mqtt_outage

    out = tmp_path / "mqtt_outage.json"
    code = mqtt_outage.main(["--before", "0.5", "--outage", "1.5", "--after", "0.5", "--rate", "10",
                             "--fps-rounds", "0", "--json", str(out)])
    data = json.loads(out.read_text())
    assert code == 0 and data["outage"]["lost"] == 0 and data["outage"]["duplicates"] == 0
    assert data["outage"]["sent_during_outage"] > 0 and data["outage"]["in_order"]
    assert len(data["model_sha256"]) == 64 and data["commit"] and data["command"].startswith("python bench/")


def test_check_reports_whether_the_broker_accepts_the_gate(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from maskipy.edge.cli import main
    from maskipy.edge.errors import OutputError
    from maskipy.edge.outputs.mqtt import probe_broker

    server = Mosquitto(tmp_path / "broker", users={"gate": "s3cret"})
    server.start()
    try:
        good = MqttConfig(enabled=True, host="127.0.0.1", port=server.port, gate=GATE, username="gate",
                          password="s3cret")
        assert probe_broker(good).startswith(f"127.0.0.1:{server.port} accepts gate {GATE}")
        with pytest.raises(OutputError, match=r"refused .*check username and password"):
            probe_broker(MqttConfig(enabled=True, host="127.0.0.1", port=server.port, username="gate",
                                    password="wrong"))
        ini = tmp_path / "config.ini"
        ini.write_text(f"[counts]\nstate_dir = {tmp_path / 'state'}\n[mqtt]\nenabled = yes\n"
                       f"host = 127.0.0.1\nport = {server.port}\ngate = {GATE}\nusername = gate\n"
                       f"password = s3cret\n")
        main(["check", "--config", str(ini)])
        assert f"✓ mqtt: 127.0.0.1:{server.port} accepts gate {GATE}" in capsys.readouterr().out
    finally:
        server.stop()
    with pytest.raises(OutputError, match="cannot connect"):
        probe_broker(MqttConfig(enabled=True, host="127.0.0.1", port=server.port), timeout=2)
