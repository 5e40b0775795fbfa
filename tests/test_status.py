"""The status page's data: GateStatus, /status.json, /metrics, the password, the preview, journald lines."""

from __future__ import annotations

import base64
import json
import logging
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from maskipy.edge.config import HttpConfig, load_edge_config
from maskipy.edge.errors import ConfigError, OutputError
from maskipy.edge.outputs.totals import day_of as local_day
from maskipy.edge.runtime import EdgeRuntime
from maskipy.edge.service.sdnotify import SystemdNotifier
from maskipy.edge.sources.replay import ReplaySource
from maskipy.edge.stats import STAGES
from maskipy.edge.tracking import CountEvent, Track
from maskipy.edge.web.status import GateStatus

LABELS = ("properly_masked", "improperly_masked", "unmasked")


def make_config(tmp_path: Path, http: str = "enabled = yes\nport = 0\n", extra: str = ""):
    path = tmp_path / "config.ini"
    path.write_text(f"[counts]\nstate_dir = {tmp_path / 'state'}\n[http]\n{http}{extra}", encoding="utf-8")
    return load_edge_config(path)


def event(label: str, wall: float, track: int = 1, confidence: float = 0.9) -> CountEvent:
    return CountEvent(wall, track, label, confidence, (10, 10, 50, 50))


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def basic(password: str, user: str = "gate") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def run_frames(runtime: EdgeRuntime) -> None:
    """The runtime's frame loop without the close at its end, so its server keeps answering."""
    while True:
        frame = runtime.capture()
        if frame is not None:
            runtime.process(frame)
        elif runtime.watchdog.exhausted:
            return


@pytest.fixture
def gate(tmp_path, default_bundle, scenes_dir):
    """``gate(http_lines)``: a runtime that has run the ten scene photos, its page still serving."""
    runtimes: list[EdgeRuntime] = []

    def make(http: str = "enabled = yes\nport = 0\n") -> EdgeRuntime:
        runtime = EdgeRuntime(make_config(tmp_path, http), source=str(scenes_dir), model=default_bundle,
                              notifier=SystemdNotifier(""))
        runtimes.append(runtime)
        run_frames(runtime)
        return runtime

    yield make
    for runtime in runtimes:
        runtime.close()


def page_of(runtime: EdgeRuntime):
    return next(o for o in runtime.outputs if o.name == "http")


# GateStatus on its own -------------------------------------------------------------------------


def test_counts_go_to_today_their_hour_and_the_recent_list_without_any_image():
    wall = time.time()
    status = GateStatus(LABELS, recent=2, wall_clock=lambda: wall)
    for i, label in enumerate(["unmasked", "properly_masked", "unmasked"]):
        status.record_count(event(label, wall, track=i, confidence=0.91))
    snap = status.snapshot()
    hour = time.localtime(wall).tm_hour
    assert snap["today"] == {"properly_masked": 1, "improperly_masked": 0, "unmasked": 2}
    assert snap["today_total"] == 3
    assert snap["per_hour"]["unmasked"][hour] == 2 and sum(snap["per_hour"]["unmasked"]) == 2
    assert [p["class"] for p in snap["recent"]] == ["unmasked", "properly_masked"]  # newest first, 2 kept
    assert set(snap["recent"][0]) == {"time", "class", "confidence", "track"}  # no box, no pixels
    assert snap["health"] == "starting" and snap["camera"]["last_frame_age_s"] is None
    json.dumps(snap)


def test_a_new_day_starts_from_zero():
    now = [time.mktime((2026, 3, 1, 23, 59, 0, 0, 0, -1))]
    status = GateStatus(LABELS, wall_clock=lambda: now[0])
    status.record_count(event("unmasked", now[0]))
    now[0] += 120
    assert status.snapshot()["today_total"] == 0
    status.record_count(event("properly_masked", now[0]))
    snap = status.snapshot()
    assert snap["today"]["properly_masked"] == 1 and snap["per_hour"]["properly_masked"][0] == 1
    assert snap["date"] == local_day(now[0]) and len(snap["recent"]) == 2


def test_restore_reads_todays_totals_and_hours_back_from_the_count_log(tmp_path):
    from maskipy.edge.outputs.counts import CountLog

    wall = time.time()
    log = CountLog(tmp_path, labels=LABELS, clock=lambda: wall)
    for label in ("unmasked", "unmasked", "improperly_masked"):
        log.on_count(event(label, wall))
    log.on_count(event("unmasked", wall - 3 * 86400))  # an old line of another day: not today's
    log.close()
    status = GateStatus(LABELS, wall_clock=lambda: wall)
    status.restore(tmp_path)
    snap = status.snapshot()
    # The count log files each event under its own day, so today's totals and today's events agree
    # (2 unmasked); hours and the list come from the events.
    assert snap["today"] == {"properly_masked": 0, "improperly_masked": 1, "unmasked": 2}
    assert sum(snap["per_hour"]["unmasked"]) == 2 and len(snap["recent"]) == 3


def test_only_the_tail_of_a_long_event_log_is_read_and_its_cut_line_skipped(tmp_path):
    from maskipy.edge.outputs.counts import read_recent_events as read_events

    path = tmp_path / "events.jsonl"
    lines = [json.dumps(event("unmasked", 1e9 + i, track=i).to_dict()) for i in range(100)]
    path.write_text("\n".join(lines) + "\n{not json\n")
    tail = read_events(path, tail_bytes=len(lines[-1]) * 3)
    assert [e["track"] for e in tail] == [98, 99]  # line 97 was cut, the broken line skipped
    assert len(read_events(path)) == 100 and read_events(tmp_path / "none.jsonl") == []


def test_a_real_run_fills_frames_stages_model_and_camera(gate, default_bundle):
    runtime = gate()
    snap = runtime.status.snapshot()
    assert snap["frames"]["total"] == snap["frames"]["inferred"] == 10
    assert snap["today_total"] == sum(runtime.counts.values()) > 0
    assert snap["model"]["sha256"] == runtime.bundle.sha256 and snap["model"]["reloads"] == 0
    assert snap["model"]["created_at"] and snap["detector"]["type"] == "yunet"
    assert snap["camera"]["reopens_total"] == 0 and snap["health"] == "ok"
    histograms = runtime.status.stage_histograms()
    assert set(histograms) == set(STAGES)
    assert histograms["detect"][0][-1] == ("+Inf", 10) and histograms["detect"][1] > 0


def test_camera_reopens_and_model_reloads_reach_the_status(tmp_path, default_bundle, scene_frames):
    sources = iter([ReplaySource([scene_frames[0]] * 3 + [None] * 10_000, name="cam"),  # then stalls
                    ReplaySource([scene_frames[1]] * 50, name="cam")])
    config = make_config(tmp_path, extra="[camera]\nstall_seconds = 0.5\n")
    runtime = EdgeRuntime(config, model=default_bundle, notifier=SystemdNotifier(""),
                          source_opener=lambda: next(sources))
    runtime.status.window = 0.0  # refresh health on every frame, not every 2 s
    try:
        runtime.reload_model()
        while runtime.timer.frames < 6:  # the loop of run(), without its close
            frame = runtime.capture()
            if frame is not None:
                runtime.process(frame)
        snap = runtime.status.snapshot()
        metrics = page_of(runtime).metrics.render()[0]
    finally:
        runtime.close()
    assert snap["camera"]["reopens_total"] == 1 and snap["camera"]["reopens_last_minute"] == 1
    assert snap["health"] == "reopening" and snap["model"]["reloads"] == 1
    assert b"maskipy_camera_reopens_total 1.0" in metrics and b"maskipy_model_reloads_total 1.0" in metrics
    assert b"maskipy_healthy 0.0" in metrics


def test_frames_per_second_and_stage_times_are_windowed_and_read_zero_once_frames_stop(
        tmp_path, default_bundle, scenes_dir):
    config = make_config(tmp_path, extra="[camera]\nloop = yes\n")
    runtime = EdgeRuntime(config, source=str(scenes_dir), model=default_bundle, notifier=SystemdNotifier(""))
    runtime.status.window = 0.3
    try:
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            frame = runtime.capture()
            if frame is not None:
                runtime.process(frame)
        running = runtime.status.snapshot()
        time.sleep(0.7)
        stopped = runtime.status.snapshot()
    finally:
        runtime.close()
    fps = runtime.timer.frames / 1.0
    assert 0.3 * fps < running["frames"]["fps"] < 3 * fps
    assert running["frames"]["stage_ms"]["detect"] > 0 and running["frames"]["stage_ms"]["classify"] > 0
    assert stopped["frames"]["fps"] == 0.0 and stopped["health"] == "ok"  # paused, not yet stalled


# The server --------------------------------------------------------------------------------------


def test_status_json_is_the_snapshot(gate):
    runtime = gate()
    code, headers, body = get(page_of(runtime).server.url + "status.json")
    data = json.loads(body)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert data["today"] == runtime.status.snapshot()["today"] and data["preview"] is False
    assert data["frames"]["total"] == 10 and data["model"]["sha256"] == runtime.bundle.sha256


def test_metrics_are_prometheus_text_with_counts_frames_stages_and_health(gate):
    from prometheus_client.parser import text_string_to_metric_families

    runtime = gate()
    code, headers, body = get(page_of(runtime).server.url + "metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode()) for s in family.samples}
    for label in LABELS:
        assert samples[("maskipy_people_counted_total", (("class", label),))] == runtime.counts.get(label, 0)
    assert samples[("maskipy_frames_total", ())] == 10
    assert samples[("maskipy_stage_seconds_count", (("stage", "detect"),))] == 10
    assert samples[("maskipy_stage_seconds_bucket", (("le", "+Inf"), ("stage", "classify")))] > 0
    assert samples[("maskipy_camera_reopens_total", ())] == 0
    assert samples[("maskipy_model_reloads_total", ())] == 0
    assert samples[("maskipy_healthy", ())] == 1
    assert samples[("process_resident_memory_bytes", ())] > 10e6
    info = next(k for k in samples if k[0] == "maskipy_model_info")
    assert ("sha256", runtime.bundle.sha256) in info[1]


def test_two_gates_in_one_process_keep_separate_metrics_and_read_their_mqtt_drops(gate):
    from maskipy.edge.outputs import Output
    from maskipy.edge.web.metrics import GateMetrics

    class MqttPeer(Output):  # what /metrics reads of the MQTT output: its name and ``dropped``
        name, dropped = "mqtt", 3

    first, second = gate(), gate()
    with_mqtt = GateMetrics(first.status, peers=[MqttPeer()])
    assert b"maskipy_mqtt_dropped_events_total 3.0" in with_mqtt.render()[0]
    assert b"maskipy_mqtt_dropped_events" not in get(page_of(first).server.url + "metrics")[2]
    frames = [f"maskipy_frames_total {n}.0".encode() for n in (10, 10)]
    assert frames[0] in with_mqtt.render()[0] and frames[1] in get(page_of(second).server.url + "metrics")[2]


def test_the_page_is_self_contained_and_unknown_paths_are_404(gate):
    url = page_of(gate()).server.url
    code, headers, body = get(url)
    assert code == 200 and b"status.json" in body and b"<svg" in body
    assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")  # no CDN, nothing remote
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert get(url + "nope")[0] == 404
    code, _, body = get(url + "stream.mjpg")
    assert code == 404 and b"preview = yes" in body  # the preview is a separate opt-in


def test_a_password_is_asked_and_a_wrong_one_refused_with_a_log_line(gate, caplog):
    url = page_of(gate("enabled = yes\nport = 0\nbind = 0.0.0.0\npassword = s3cret pass\n")).server.url
    url = url.replace("0.0.0.0", "127.0.0.1")
    code, headers, body = get(url + "status.json")
    assert code == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
    with caplog.at_level(logging.WARNING, logger="maskipy.edge.web.server"):
        code, _, body = get(url + "metrics", basic("nope"))
    assert code == 401 and body == b"401 unauthorized\n"
    assert [r.getMessage() for r in caplog.records] == ["http: wrong password from 127.0.0.1 for /metrics"]
    assert get(url + "status.json", basic("s3cret pass"))[0] == 200
    assert get(url + "metrics", {"Authorization": "Bearer s3cret pass"})[0] == 200
    assert get(url + "metrics", {"Authorization": "Bearer s3cret"})[0] == 401


def test_the_preview_snapshot_is_an_annotated_jpeg_made_only_when_asked(gate):
    import cv2

    runtime = gate("enabled = yes\nport = 0\npreview = yes\npreview_width = 200\n")
    feed = page_of(runtime).preview
    assert feed.encoded == 0  # nobody watched while the frames ran: nothing was encoded
    frame = cv2.imread(str(next(Path(runtime.source_spec).rglob("*.jpg"))))
    track = Track(7, (20, 20, 80, 80), 0.0, 0.0, votes=None, label="unmasked", confidence=0.97)
    url = page_of(runtime).server.url

    def offer_frames() -> None:
        while not stop.wait(0.05):
            page_of(runtime).on_frame([track], frame)

    import threading

    stop = threading.Event()
    feeder = threading.Thread(target=offer_frames, daemon=True)
    feeder.start()
    try:
        code, headers, body = get(url + "snapshot.jpg")
    finally:
        stop.set()
        feeder.join()
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and headers["Content-Type"] == "image/jpeg"
    assert image.shape[1] == 200 and feed.encoded >= 1
    box_colour = image[int(20 * 200 / frame.shape[1]) + 1, 40]  # on the drawn box's top edge
    assert abs(int(box_colour[2]) - 220) < 60 and box_colour[0] < 110  # unmasked red (BGR 40,40,220)


def test_the_preview_hands_over_at_most_fps_frames_a_second():
    from maskipy.edge.web.preview import PreviewFeed

    now = [0.0]
    feed = PreviewFeed(fps=2, width=64, clock=lambda: now[0])
    frame = np.zeros((48, 64, 3), np.uint8)
    try:
        assert not feed.offer([], frame)  # nobody watches
        with feed.watch():
            handed = []
            for _ in range(20):
                handed.append(feed.offer([], frame))
                now[0] += 0.1
            assert sum(handed) == 4  # 2 s at 2 frames/s
            assert feed.next_jpeg(0, 5.0) is not None
    finally:
        feed.close()


def test_a_taken_port_is_a_clear_error(tmp_path, default_bundle):
    from maskipy.edge.web.output import StatusPageOutput

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http = HttpConfig(enabled=True, port=port)
        with pytest.raises(OutputError, match=rf"port = {port}: cannot listen there .*pick another port"):
            StatusPageOutput(http, GateStatus(LABELS))


# Config ---------------------------------------------------------------------------------------


def test_http_is_off_and_local_by_default(tmp_path):
    config = load_edge_config(None)
    assert config.http == HttpConfig() and not config.http.enabled and config.http.bind == "127.0.0.1"
    assert not config.http.preview


@pytest.mark.parametrize("bind", ["0.0.0.0", "192.168.1.20", "gate.local", "::"])
def test_a_network_address_needs_a_password(tmp_path, bind):
    with pytest.raises(ConfigError, match=rf"\[http\] bind = {bind}: .*password is empty; set password = "):
        make_config(tmp_path, f"enabled = yes\nbind = {bind}\n")
    assert make_config(tmp_path, f"enabled = yes\nbind = {bind}\npassword = x\n").http.password == "x"
    assert not make_config(tmp_path, f"enabled = no\nbind = {bind}\n").http.enabled


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.1.1", "::1", "localhost"])
def test_loopback_needs_no_password(tmp_path, bind):
    assert make_config(tmp_path, f"enabled = yes\nbind = {bind}\n").http.bind == bind


def test_unknown_http_keys_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"\[http\] passwd = x: unknown key; did you mean 'password'"):
        make_config(tmp_path, "passwd = x\n")


# The command ------------------------------------------------------------------------------------


def test_maskipy_edge_run_serves_the_page_until_sigterm(tmp_path, default_bundle, scenes_dir):
    config = tmp_path / "c.ini"
    config.write_text("[camera]\nloop = yes\n[http]\nenabled = yes\nport = 0\n")
    process = subprocess.Popen([sys.executable, "-m", "maskipy.edge.cli", "run", "--config", str(config),
                                "--source", str(scenes_dir), "--model", str(default_bundle),
                                "--state-dir", str(tmp_path / "state")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in process.stderr:
            if "status page at" in line:
                url = line.split("status page at ")[1].split()[0]
                break
        assert url, "no status page line"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            data = json.loads(get(url + "status.json")[2])
            if data["today_total"] > 0:
                break
            time.sleep(0.2)
        assert data["today_total"] > 0 and data["health"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "frames" in out


def test_every_metric_the_alert_rules_read_is_exported(gate):
    """systemd/prometheus/maskipy-alerts.yml names no metric the gate does not serve (a renamed
    metric would leave its alert silent forever)."""
    import re

    from prometheus_client.parser import text_string_to_metric_families

    from maskipy.edge.outputs import Output
    from maskipy.edge.web.metrics import GateMetrics

    class MqttPeer(Output):  # what /metrics reads of the MQTT output
        name, dropped, queued = "mqtt", 0, 7

    rules_file = Path(__file__).resolve().parent.parent / "systemd" / "prometheus" / "maskipy-alerts.yml"
    rules = rules_file.read_text()
    wanted = set(re.findall(r"\b(maskipy_[a-z_]+)", rules))
    runtime = gate()
    body = GateMetrics(runtime.status, peers=[*runtime.outputs, MqttPeer()]).render()[0].decode()
    served = {s.name for family in text_string_to_metric_families(body) for s in family.samples}
    assert wanted and not wanted - served, f"rules read metrics the gate does not serve: {wanted - served}"
    assert 'maskipy_output_degraded{output="log"} 0.0' in body and "maskipy_mqtt_queued_events 7.0" in body
