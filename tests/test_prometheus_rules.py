"""The Prometheus alert rules beside the metrics (systemd/prometheus/maskipy-alerts.yml), checked by
Debian's own promtool: the file loads, and each alert fires on the series it is for and stays quiet
on a healthy gate (promtool's rule unit tests, evaluated by Prometheus's engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "systemd" / "prometheus" / "maskipy-alerts.yml"

# Two gates on a one-minute scrape: door-1 goes wrong in each way, door-2 stays healthy throughout.
UNIT_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{job="maskipy", instance="door-1"}}'
        values: '1 1 0x10'
      - series: 'up{{job="maskipy", instance="door-2"}}'
        values: '1x12'
      - series: 'maskipy_healthy{{instance="door-1"}}'
        values: '1x14 0x10'
      - series: 'maskipy_healthy{{instance="door-2"}}'
        values: '1x24'
      - series: 'maskipy_frames_per_second{{instance="door-1"}}'
        values: '3x24'
      - series: 'maskipy_frames_per_second{{instance="door-2"}}'
        values: '14x24'
      - series: 'maskipy_output_degraded{{instance="door-1", output="mqtt"}}'
        values: '0 0 1x10'
      - series: 'maskipy_output_degraded{{instance="door-2", output="mqtt"}}'
        values: '0x12'
      - series: 'maskipy_mqtt_queued_events{{instance="door-1"}}'
        values: '0+20x40'
      - series: 'maskipy_mqtt_queued_events{{instance="door-2"}}'
        values: '500x40'
      - series: 'maskipy_model_reload_failures_total{{instance="door-1"}}'
        values: '0 0 0 1 1 1'
      - series: 'maskipy_model_reload_failures_total{{instance="door-2"}}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 3m
        alertname: MaskipyGateDown
        exp_alerts: []
      - eval_time: 5m
        alertname: MaskipyGateDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: maskipy, instance: door-1}}
            exp_annotations:
              summary: "door-1: gate not answering /metrics for 2 minutes"
              description: "The service is stopped, the Pi is off or the network is down: nobody is checked at this door. On the Pi: systemctl status maskipy-edge; journalctl -u maskipy-edge."
      - eval_time: 12m
        alertname: MaskipyFrameRateLow
        exp_alerts:
          - exp_labels: {{severity: warning, instance: door-1}}
            exp_annotations:
              summary: "door-1: 3.0 frames/s for 10 minutes"
              description: "Below 5 frames/s a person walking through may be seen too few times to be counted. A hot Pi throttles (vcgencmd get_throttled); check [detector] every_n_frames and the camera size."
      - eval_time: 20m
        alertname: MaskipyFrameRateLow
        exp_alerts: []
      - eval_time: 20m
        alertname: MaskipyUnhealthy
        exp_alerts:
          - exp_labels: {{severity: critical, instance: door-1}}
            exp_annotations:
              summary: "door-1: no frames, or the camera was reopened within the minute"
              description: "The camera stalls or keeps dropping out (cable, power, another process holding it). journalctl -u maskipy-edge shows the watchdog's reopen lines."
      - eval_time: 6m
        alertname: MaskipyOutputDegraded
        exp_alerts: []
      - eval_time: 7m
        alertname: MaskipyOutputDegraded
        exp_alerts:
          - exp_labels: {{severity: warning, instance: door-1, output: mqtt}}
            exp_annotations:
              summary: "door-1: the mqtt output is degraded"
              description: "Counting goes on but mqtt is not working as it should (a full or read-only disk, a broker that cannot be reached). /status.json says why."
      - eval_time: 30m
        alertname: MaskipyMqttQueueGrowing
        exp_alerts:
          - exp_labels: {{severity: warning, instance: door-1}}
            exp_annotations:
              summary: "door-1: 600 counted people waiting for the MQTT broker"
              description: "Events are kept (on disk, or in memory while the disk refuses) until the broker acknowledges them; past the queue's bound the oldest are dropped (maskipy_mqtt_dropped_events_total)."
      - eval_time: 4m
        alertname: MaskipyModelReloadFailed
        exp_alerts:
          - exp_labels: {{severity: warning, instance: door-1}}
            exp_annotations:
              summary: "door-1: a deployed model was refused; the gate kept its old one"
              description: "maskipy-edge bundle status on the gate shows which model runs; journalctl -u maskipy-edge says why the new one was refused."
"""  # noqa: E501 (the rules' own one-line descriptions)


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (apt-get install -y --no-install-recommends prometheus)")
    return found


def test_the_rules_file_loads(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout + done.stderr


def test_each_alert_fires_on_its_fault_and_not_on_a_healthy_gate(promtool: str, tmp_path: Path) -> None:
    tests = tmp_path / "maskipy-alerts.test.yml"
    tests.write_text(UNIT_TESTS.format(rules=RULES))
    done = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_a_rule_that_looks_at_the_wrong_series_is_caught(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: with the frame-rate threshold raised above door-2's 14 frames/s, the
    healthy gate fires too and promtool says so."""
    rules = tmp_path / "wrong.yml"
    too_high = RULES.read_text().replace("maskipy_frames_per_second < 5", "maskipy_frames_per_second < 20")
    rules.write_text(too_high)
    tests = tmp_path / "wrong.test.yml"
    tests.write_text(UNIT_TESTS.format(rules=rules))
    done = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0 and "MaskipyFrameRateLow" in done.stdout + done.stderr, done.stdout
