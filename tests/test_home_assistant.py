"""A real Home Assistant core as the gate's client: real Mosquitto, real ``hass``, the real gate.

``make ha-test`` builds Home Assistant 2025.4.4 in its own venv (.venv-ha, Python 3.13 from Debian 13:
tests/homeassistant/build.sh) and runs the test marked ``homeassistant`` here; ``make test`` leaves it
out (-m 'not homeassistant'). Home Assistant runs on a minimal configuration (no default_config): the
MQTT integration as a config entry pointing at the test's broker, and tests/homeassistant's
``maskipy_probe``, which writes every state change with its entity's unique_id to a JSON-lines file,
so the test reads what Home Assistant shows without its HTTP API and authentication.

What it holds, in one run of both programs (Home Assistant's start costs seconds, so one scenario):
the discovered entities exist with their units and classes; the counters equal the gate's
totals.json; a gate killed during an alert (its retained alert ``ON``) shows no alert when the next
run starts; the entities go unavailable when the gate is stopped (SIGTERM) and when it is killed
(kill -9, the broker's last will); after Home Assistant restarts, with the retained discovery
configs gone, the gate's answer to its ``homeassistant/status online`` brings the entities back; and
Home Assistant's log has no error and no warning about the gate's payloads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from mqtt_broker import GATE, LABELS, Mosquitto, Recorder, free_port, needs_mosquitto

from maskipy.edge.config import MqttConfig
from maskipy.edge.outputs.hass import GateTopics

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "tests" / "homeassistant"
BUILD = HERE / "build.sh"
HASS = Path(os.environ.get("MASKIPY_HASS") or REPO / ".venv-ha" / "bin" / "hass")
TOPICS = GateTopics.from_config(MqttConfig(enabled=True, gate=GATE))
DISCOVERY = TOPICS.discovery(LABELS, "test")  # config topic -> payload, as the gate announces them
UNIQUE_IDS = [str(body["unique_id"]) for body in DISCOVERY.values()]
ALERT = f"maskipy_{TOPICS.id}_alert"
# Home Assistant's start-up and shutdown take seconds, more on a loaded machine.
START_S, STEP_S = 120.0, 60.0
# Warnings every run of this setup logs: the test's own choices, not problems.
EXPECTED_WARNINGS = ("Skipping pip installation of required modules",
                     "We found a custom integration maskipy_probe")


def configuration(http_port: int) -> str:
    """configuration.yaml: no default_config; a fixed location and time zone (no look-up on the network)."""
    return f"""\
homeassistant:
  name: maskipy test
  latitude: 52.0
  longitude: 5.0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
# frontend (always loaded) needs http; on a free loopback port so parallel runs do not collide.
http:
  server_host: 127.0.0.1
  server_port: {http_port}
logger:
  default: warning
  logs:
    # PyTurboJPEG finds no libturbojpeg in the Python 3.13 sysroot; only camera snapshots would use it.
    homeassistant.components.camera.img_util: critical
maskipy_probe:
"""


def mqtt_entry(port: int) -> dict[str, Any]:
    """.storage/core.config_entries with the MQTT integration set up for the broker (what the UI's config
    flow stores: a broker can no longer be configured in YAML). Discovery and the birth message
    (``homeassistant/status`` ``online``) are on, as by default."""
    entry = {"created_at": "2026-01-01T00:00:00+00:00", "modified_at": "2026-01-01T00:00:00+00:00",
             "data": {"broker": "127.0.0.1", "port": port}, "disabled_by": None, "discovery_keys": {},
             "domain": "mqtt", "entry_id": "01JMASKIPYTESTMQTT0000000", "minor_version": 2,
             "options": {"discovery": True, "discovery_prefix": TOPICS.discovery_prefix},
             "pref_disable_new_entities": False, "pref_disable_polling": False, "source": "user",
             "subentries": [], "title": f"127.0.0.1:{port}", "unique_id": None, "version": 1}
    return {"version": 1, "minor_version": 5, "key": "core.config_entries", "data": {"entries": [entry]}}


class HomeAssistant:
    """``hass -c <config>`` with the probe; ``states`` is what it showed, line by line."""

    def __init__(self, config: Path, broker_port: int) -> None:
        self.config = config
        (config / ".storage").mkdir(parents=True)
        (config / "configuration.yaml").write_text(configuration(free_port()))
        (config / ".storage" / "core.config_entries").write_text(json.dumps(mqtt_entry(broker_port)))
        shutil.copytree(HERE / "custom_components", config / "custom_components")
        self.lines = config / "states.jsonl"
        self.log = config / "home-assistant.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.time()
        with open(self.config / "hass.out", "ab") as out:
            command = [str(HASS), "-c", str(self.config), "--skip-pip", "--log-no-color"]
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        started = wait_for(lambda: self.process.poll() is not None or any(
            r["event"] == "started" and r["time"] >= self.started_at for r in self.records()), START_S, 0.2)
        assert self.process.poll() is None, f"hass exited ({self.process.returncode}):\n{self.tail()}"
        assert started, f"Home Assistant did not start within {START_S:.0f} s:\n{self.tail()}"

    def stop(self) -> None:
        """SIGTERM, as systemd stops it; it saves its registries and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STEP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"hass did not stop within {STEP_S:.0f} s:\n{self.tail()}") from None
        self.process = None

    def records(self) -> list[dict[str, Any]]:
        if not self.lines.exists():
            return []
        return [json.loads(line) for line in self.lines.read_text().splitlines() if line.endswith("}")]

    def states(self, since: float = 0.0) -> list[dict[str, Any]]:
        """The state changes of the gate's entities (by discovery unique_id) at or after ``since``."""
        return [r for r in self.records() if r["event"] == "state" and r["unique_id"] in UNIQUE_IDS
                and r["time"] >= since]

    def shown(self, since: float = 0.0) -> dict[str, dict[str, Any]]:
        """unique_id -> the latest state Home Assistant shows for it (changes since ``since`` only)."""
        return {r["unique_id"]: r for r in self.states(since)}

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.log, self.config / "hass.out", self.lines):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts)


class Gate:
    """``maskipy-edge run`` on a looping video of one photo, publishing to the broker."""

    def __init__(self, work: Path, state: Path, broker_port: int) -> None:
        self.work, self.state = work, state
        self.ini = work / "gate.ini"
        # loop: the gate runs until the test stops it; one still photo is one person, counted once.
        self.ini.write_text(f"[camera]\nloop = yes\n[outputs]\ndevices = log\n[mqtt]\nenabled = yes\n"
                            f"host = 127.0.0.1\nport = {broker_port}\ngate = {GATE}\n")
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, video: Path) -> float:
        self.runs += 1
        at = time.time()
        with open(self.work / f"gate-{self.runs}.log", "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "maskipy.edge.cli", "run", "--config", str(self.ini), "--source",
                 str(video), "--state-dir", str(self.state)], stdout=out, stderr=subprocess.STDOUT)
        return at

    def signal(self, number: int) -> int:
        assert self.process is not None
        self.process.send_signal(number)
        code = self.process.wait(timeout=STEP_S)
        self.process = None
        return code

    def totals(self) -> dict[str, int]:
        """totals.json summed over its days: what the gate's retained MQTT totals count."""
        try:
            days = json.loads((self.state / "totals.json").read_text())["days"]
        except (OSError, ValueError, KeyError):
            return {}
        return {label: sum(day.get(label, 0) for day in days.values()) for label in LABELS}

    def log(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.work.glob("gate-*.log")))


def counters_equal_totals(hass: HomeAssistant, gate: Gate, since: float) -> bool:
    shown, totals = hass.shown(since), gate.totals()
    return bool(totals) and all(
        shown.get(f"maskipy_{TOPICS.id}_{label}", {}).get("state") == str(totals[label]) for label in LABELS)


def all_shown(hass: HomeAssistant, since: float, state: str | None = None) -> bool:
    """Every entity changed since ``since``; all to ``state`` if given, else all available."""
    shown = hass.shown(since)
    if set(shown) != set(UNIQUE_IDS):
        return False
    if state is None:
        return all(r["state"] != "unavailable" for r in shown.values())
    return all(r["state"] == state for r in shown.values())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Mosquitto, HomeAssistant, Gate, Recorder]]:
    if not HASS.exists():
        pytest.skip(f"{HASS} not found: make ha-test builds Home Assistant's venv and runs this test")
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    hass = HomeAssistant(tmp_path / "hass", broker.port)
    gate = Gate(tmp_path, tmp_path / "state", broker.port)
    recorder = Recorder(broker.port, topics=(TOPICS.hass_status, f"{TOPICS.discovery_prefix}/+/+/+/config"),
                        client_id="ha-test-recorder").start()
    try:
        yield broker, hass, gate, recorder
    finally:
        if gate.process is not None:
            gate.process.kill()
            gate.process.wait()
        try:
            hass.stop()
        finally:
            recorder.stop()
            broker.stop()
            print(hass.tail(200), gate.log(), sep="\n")  # shown when the test failed


@needs_mosquitto
@pytest.mark.homeassistant
def test_home_assistant_shows_the_gate(stack: tuple[Mosquitto, HomeAssistant, Gate, Recorder],
                                       make_video, scenes_dir: Path) -> None:
    import cv2

    _, hass, gate, recorder = stack
    unmasked = make_video([cv2.imread(str(scenes_dir / "without_mask" / "test1.jpg"))] * 20, "unmasked.avi")
    masked = make_video([cv2.imread(str(scenes_dir / "with_mask" / "test1.jpg"))] * 20, "masked.avi")
    hass.start()

    # 1. Discovery: every entity, with the units and classes the gate announced, values = totals.json.
    since = gate.start(unmasked)
    assert wait_for(lambda: all_shown(hass, since), START_S, 0.2), \
        f"not every entity discovered and available: {sorted(hass.shown(since))}\n{hass.tail()}"
    assert wait_for(lambda: gate.totals().get("unmasked", 0) >= 1, STEP_S, 0.2), gate.log()
    assert wait_for(lambda: hass.shown(since)[ALERT]["state"] == "on", STEP_S, 0.2), \
        "an unmasked person at the door: the alert is on"
    assert wait_for(lambda: counters_equal_totals(hass, gate, since), STEP_S, 0.2), \
        f"Home Assistant shows {hass.shown(since)}, totals.json says {gate.totals()}"
    shown = hass.shown(since)
    for label in LABELS:
        attributes = shown[f"maskipy_{TOPICS.id}_{label}"]["attributes"]
        assert attributes["unit_of_measurement"] == "people"
        assert attributes["state_class"] == "total_increasing"
        assert shown[f"maskipy_{TOPICS.id}_{label}"]["entity_id"].startswith("sensor.")
    assert shown[ALERT]["entity_id"].startswith("binary_sensor.")
    assert shown[ALERT]["attributes"]["device_class"] == "problem"

    # 2. kill -9 during the alert: the broker's last will makes every entity unavailable; the retained
    # alert stays ON on the broker for the next run to correct.
    killed = time.time()
    assert gate.signal(signal.SIGKILL) == -signal.SIGKILL
    assert wait_for(lambda: all_shown(hass, killed, "unavailable"), STEP_S, 0.2), \
        f"after kill -9: {hass.shown(killed)}"

    # 3. The next run starts with no one unmasked: Home Assistant never shows the alert on.
    since = gate.start(masked)
    assert wait_for(lambda: gate.totals().get("properly_masked", 0) >= 1, STEP_S, 0.2), gate.log()
    assert wait_for(lambda: all_shown(hass, since) and counters_equal_totals(hass, gate, since),
                    STEP_S, 0.2), f"Home Assistant shows {hass.shown(since)}, totals.json {gate.totals()}"
    assert hass.shown(since)[ALERT]["state"] == "off"
    alert_states = [r["state"] for r in hass.states(since) if r["unique_id"] == ALERT]
    assert "on" not in alert_states, f"the alert went on at start: {alert_states}"

    # 4. SIGTERM: the gate says offline itself and exits 0.
    stopped = time.time()
    assert gate.signal(signal.SIGTERM) == 0, gate.log()
    assert wait_for(lambda: all_shown(hass, stopped, "unavailable"), STEP_S, 0.2), \
        f"after SIGTERM: {hass.shown(stopped)}"

    # 5. Home Assistant restarts while the gate runs. The retained discovery configs are cleared while
    # it is down, so only the gate's answer to the birth message can bring the entities back.
    since = gate.start(masked)
    assert wait_for(lambda: all_shown(hass, since) and counters_equal_totals(hass, gate, since),
                    STEP_S, 0.2), f"Home Assistant shows {hass.shown(since)}, totals.json {gate.totals()}"
    hass.stop()
    for topic in DISCOVERY:
        recorder.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    births = len([m for m in recorder.on(TOPICS.hass_status) if m.payload == b"online"])
    restarted = time.time()
    hass.start()
    assert wait_for(lambda: len([m for m in recorder.on(TOPICS.hass_status) if m.payload == b"online"])
                    > births, STEP_S, 0.2), "Home Assistant sent no birth message after its restart"
    assert wait_for(lambda: all_shown(hass, restarted) and counters_equal_totals(hass, gate, restarted),
                    STEP_S, 0.2), f"after the restart: {hass.shown(restarted)}, totals.json {gate.totals()}"
    shown = hass.shown(restarted)
    assert not any(r["attributes"].get("restored") for r in shown.values()), "live entities, not restored"
    assert shown[ALERT]["state"] == "off"
    announced = [m for m in recorder.messages if m.topic in DISCOVERY and m.payload and m.at >= restarted]
    assert {m.topic for m in announced} == set(DISCOVERY), "the gate announced itself again"

    # 6. And the restarted Home Assistant sees the gate stop too.
    stopped = time.time()
    assert gate.signal(signal.SIGTERM) == 0, gate.log()
    assert wait_for(lambda: all_shown(hass, stopped, "unavailable"), STEP_S, 0.2), \
        f"after SIGTERM: {hass.shown(stopped)}"
    hass.stop()

    # Home Assistant took every payload: no error, no warning but the two this setup always causes.
    problems = [line for line in hass.log.read_text(errors="replace").splitlines()
                if (" ERROR " in line or " WARNING " in line)
                and not any(warning in line for warning in EXPECTED_WARNINGS)]
    assert not problems, "\n".join(problems)


def test_the_build_script_passes_shellcheck() -> None:
    subprocess.run(["bash", "-n", str(BUILD)], check=True)
    assert os.access(BUILD, os.X_OK), f"{BUILD.name} should be executable"
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (.ci/run installs it: apt-get install -y shellcheck)")
    done = subprocess.run(["shellcheck", str(BUILD)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


def test_make_ha_test_builds_its_venv_and_runs_only_this_test() -> None:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    done = subprocess.run(["make", "-n", "-B", "ha-test"], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert "tests/homeassistant/build.sh .venv-ha" in done, done
    assert "-m homeassistant tests/test_home_assistant.py" in done, done
    recipe = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60,
                            check=True).stdout
    assert "-m 'not homeassistant'" in recipe or '-m "not homeassistant"' in recipe, recipe
