"""An operator's worst week: kills, full and read-only disks, two gates, bad totals, bad bundles, stalls.

A full disk is a real 64 KiB tmpfs (``mount -t tmpfs -o size=64k``) and a read-only one the same
tmpfs remounted ``ro``; where the sandbox cannot mount (no CAP_SYS_ADMIN), the full disk is
``/dev/full`` (every write: ENOSPC) and the read-only tests skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for

from maskipy.edge.bundle import current_bundle_dir, previous_bundle_dir
from maskipy.edge.outputs.counts import CountLog, append_line
from maskipy.edge.service.statelock import StateLock
from maskipy.edge.tracking import CountEvent

LABELS = ("properly_masked", "improperly_masked", "unmasked")
NOON = time.mktime((2026, 3, 14, 12, 0, 0, 0, 0, -1))
DAY = 86400.0


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(label: str, when: float = NOON) -> CountEvent:
    return CountEvent(when, 1, label, 0.9, (0, 0, 10, 10))


def lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    assert not text or text.endswith("\n"), "a partial line was left in the event log"
    return [json.loads(line) for line in text.splitlines()]




class Tmpfs:
    """A small tmpfs mounted at ``path``; ``fill()`` uses up its space, ``readonly(flag)`` remounts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        with open(self.filler, "ab", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
            except OSError:
                pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def readonly(self, flag: bool) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if flag else 'rw'}", str(self.path)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    path = tmp_path / "small"
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                            capture_output=True)
    if result.returncode != 0:
        yield None
        return
    try:
        yield Tmpfs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# --- counts are never lost ---------------------------------------------------------------------


def test_a_count_logged_but_not_yet_totalled_is_added_back_at_start(tmp_path):
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    # A kill between the event line and the totals: the line is there, the totals are not.
    append_line(tmp_path / "events.jsonl", json.dumps(event("properly_masked").to_dict()) + "\n")
    restarted = CountLog(tmp_path, labels=LABELS, clock=Clock())
    assert restarted.totals == {"properly_masked": 1, "improperly_masked": 0, "unmasked": 1}
    assert json.loads((tmp_path / "totals.json").read_text())["totals"]["properly_masked"] == 1


def test_a_half_written_last_line_is_cut_at_start(tmp_path):
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    with open(tmp_path / "events.jsonl", "a") as handle:
        handle.write('{"id": "cut-off", "label": "unm')  # a power cut mid-write
    restarted = CountLog(tmp_path, labels=LABELS, clock=Clock())
    restarted.on_count(event("unmasked"))
    assert [e["label"] for e in lines(tmp_path / "events.jsonl")] == ["unmasked", "unmasked"]
    assert restarted.totals["unmasked"] == 2


def test_full_disk_keeps_counting_in_memory_and_catches_up(tmp_path, tmpfs, caplog):
    if tmpfs is None:  # no mount here: every write to /dev/full fails with ENOSPC
        state = tmp_path / "state"
        state.mkdir()
        (state / "events.jsonl").symlink_to("/dev/full")
    else:
        state = tmpfs.path / "state"
    clock = Clock()
    log = CountLog(state, labels=LABELS, clock=clock, flush_seconds=30)
    log.on_count(event("unmasked"))
    if tmpfs is None:
        assert log.degraded and "No space" in log.degraded
        return
    tmpfs.fill()
    for _ in range(3):
        log.on_count(event("properly_masked"))  # ENOSPC must not end the frame loop
    assert log.degraded and "No space" in log.degraded
    assert caplog.text.count("cannot save counts") == 1  # said once, not per count
    assert log.totals == {"properly_masked": 3, "improperly_masked": 0, "unmasked": 1}
    assert not list(state.glob("*.tmp"))
    assert len(lines(state / "events.jsonl")) <= 4  # whole lines only (a page's slack may hold some)
    tmpfs.free()
    clock.now += 31
    log.on_frame([], None)  # the periodic retry
    assert log.degraded is None and "saved again" in caplog.text
    assert sorted(e["label"] for e in lines(state / "events.jsonl")) == ["properly_masked"] * 3 + ["unmasked"]
    assert CountLog(state, labels=LABELS, clock=clock).totals["properly_masked"] == 3


def test_read_only_state_dir_keeps_counting_and_saves_after_remount(tmpfs):
    if tmpfs is None:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    state = tmpfs.path / "state"
    clock = Clock()
    log = CountLog(state, labels=LABELS, clock=clock)
    log.on_count(event("unmasked"))
    tmpfs.readonly(True)
    try:
        log.on_count(event("unmasked"))
        assert log.degraded and "Read-only" in log.degraded
    finally:
        tmpfs.readonly(False)
    log.on_count(event("unmasked"))  # the next count retries and writes everything
    assert log.degraded is None
    assert len(lines(state / "events.jsonl")) == 3
    assert CountLog(state, labels=LABELS, clock=clock).totals["unmasked"] == 3


@pytest.mark.parametrize("saved", ["[]", "null", '"text"',
                                   '{"date": "2026-03-14", "totals": {"unmasked": "3"}}',
                                   '{"days": {"2026-03-14": {"unmasked": -1}}}', '{"days": []}'])
def test_wrong_shaped_totals_are_rebuilt_from_the_event_log(tmp_path, caplog, saved):
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    log.on_count(event("unmasked"))
    (tmp_path / "totals.json").write_text(saved)
    restarted = CountLog(tmp_path, labels=LABELS, clock=Clock())
    assert restarted.totals["unmasked"] == 2
    assert "rebuilding them from the event log" in caplog.text


def test_totals_json_that_is_a_directory_is_reported_not_silently_unsaved(tmp_path, caplog):
    (tmp_path / "totals.json").mkdir()
    log = CountLog(tmp_path, labels=LABELS, clock=Clock())
    log.on_count(event("unmasked"))
    assert log.degraded is not None and "is a directory" in caplog.text
    assert len(lines(tmp_path / "events.jsonl")) == 1  # the event itself is still saved


def test_clock_stepping_back_over_midnight_keeps_both_days(tmp_path):
    clock = Clock(NOON + DAY)
    log = CountLog(tmp_path, labels=LABELS, clock=clock)
    log.on_count(event("unmasked", when=clock.now))
    clock.now = NOON  # NTP steps the clock back a day (or the Pi booted before NTP sync)
    log.on_count(event("properly_masked", when=clock.now))
    clock.now = NOON + DAY
    log.on_count(event("unmasked", when=clock.now))
    restarted = CountLog(tmp_path, labels=LABELS, clock=clock)
    assert restarted.days["2026-03-15"]["unmasked"] == 2
    assert restarted.days["2026-03-14"]["properly_masked"] == 1


def test_yesterdays_totals_are_kept_after_midnight(tmp_path):
    clock = Clock()
    log = CountLog(tmp_path, labels=LABELS, clock=clock)
    log.on_count(event("unmasked"))
    clock.now += DAY
    log.on_count(event("properly_masked", when=clock.now))
    log.close()
    saved = json.loads((tmp_path / "totals.json").read_text())
    assert saved["days"]["2026-03-14"]["unmasked"] == 1
    assert saved["days"]["2026-03-15"]["properly_masked"] == 1
    assert saved["date"] == "2026-03-15" and saved["totals"]["unmasked"] == 0


def test_a_second_gate_on_one_state_dir_is_refused(tmp_path):
    with StateLock(tmp_path), pytest.raises(Exception, match="another maskipy-edge run"):
        StateLock(tmp_path).acquire()
    StateLock(tmp_path).acquire().release()  # free again once the first one let go


def gate_command(state: Path, source: str | Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "maskipy.edge.cli", "run", "--source", str(source), "--model", str(model),
            "--state-dir", str(state), *extra]


def test_sigkill_mid_run_loses_no_count_and_a_second_gate_is_refused(tmp_path, scenes_dir, default_bundle):
    config = tmp_path / "config.ini"
    config.write_text("[camera]\nloop = yes\n[counts]\nflush_seconds = 3600\n")
    state = tmp_path / "state"
    gate = subprocess.Popen(gate_command(state, scenes_dir, default_bundle, "--config", str(config)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(lines(state / "events.jsonl")) >= 8, 60), "the gate counted nobody"
        second = subprocess.run(gate_command(state, scenes_dir, default_bundle, "--max-frames", "1"),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        assert "another maskipy-edge run" in second.stderr and "Traceback" not in second.stderr
    finally:
        gate.send_signal(signal.SIGKILL)
        gate.wait(30)
    logged = lines(state / "events.jsonl")
    restarted = CountLog(state, labels=LABELS)
    by_label = {label: sum(e["label"] == label for e in logged) for label in LABELS}
    assert sum(restarted.totals.values()) == len(logged) >= 8
    assert restarted.totals == by_label
    os.sync()


# --- a bad model never bricks the gate ---------------------------------------------------------


@pytest.fixture
def installed(tmp_path, default_bundle):
    """A state dir with the default model as ``previous`` and a re-stamped copy of it as ``current``."""
    import shutil

    from maskipy.edge.swap import cli as swap

    state = tmp_path / "state"
    swap.install_bundle(default_bundle, state, notify=False)
    newer = tmp_path / "newer"
    shutil.copytree(default_bundle, newer)
    meta = json.loads((newer / "model.json").read_text())
    (newer / "model.json").write_text(json.dumps({**meta, "created_at": "2026-03-15T00:00:00+00:00"}))
    swap.install_bundle(newer, state, notify=False)
    return state, current_bundle_dir(state), previous_bundle_dir(state)


def gate(state: Path, frames, **kwargs):
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier
    from maskipy.edge.sources.replay import ReplaySource

    config = load_edge_config().replace("counts", state_dir=state)
    return EdgeRuntime(config, notifier=kwargs.pop("notifier", SystemdNotifier("")),
                       source_opener=lambda: ReplaySource(list(frames)), **kwargs)


def corrupt(bundle: Path) -> None:
    (bundle / "model.tflite").write_bytes(b"not a model")


def test_corrupt_current_model_falls_back_to_previous_loudly(installed, scene_frames, caplog):
    state, current, previous = installed
    corrupt(current)
    runtime = gate(state, scene_frames[:2])
    try:
        assert runtime.bundle.directory == previous
        assert runtime.problems() and runtime.status_line().startswith("DEGRADED (fallback to the previous")
        assert "FALLBACK" in caplog.text
    finally:
        runtime.close()


def test_corrupt_current_and_previous_fall_back_to_the_built_in_model(installed, scene_frames):
    from maskipy.edge.bundle import DEFAULT_BUNDLE

    state, current, previous = installed
    corrupt(current)
    (previous / "model.json").write_text('{"labels": [1, 2]}')  # non-string labels
    runtime = gate(state, scene_frames[:2])
    try:
        assert runtime.bundle.directory == DEFAULT_BUNDLE
        assert "built-in" in runtime.status_line()
    finally:
        runtime.close()


def test_reload_keeps_the_running_model_whatever_the_new_one_does(installed, scene_frames, monkeypatch):
    from maskipy.edge.classifier import load as modelload

    state, current, _ = installed
    runtime = gate(state, scene_frames[:2])
    try:
        meta = json.loads((current / "model.json").read_text())
        (current / "model.json").write_text(json.dumps({**meta, "labels": [0, 1, 2, 3]}))
        assert runtime.reload_model() is False and runtime.bundle.directory == current

        def unreadable(path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        (current / "model.json").write_text(json.dumps(meta))
        monkeypatch.setattr("maskipy.edge.bundle.sha256_file", unreadable)  # what the service user sees
        assert runtime.reload_model() is False
        monkeypatch.undo()
        def broken(*args):
            raise RuntimeError("an interpreter that falls over")

        monkeypatch.setattr(modelload, "build_classifier", broken)
        assert runtime.reload_model() is False and runtime.reload_failures == 3
    finally:
        runtime.close()


def test_a_deploy_during_start_up_is_loaded(installed, scene_frames):
    from maskipy.edge.swap import cli as swap

    state, _, previous = installed
    runtime = gate(state, scene_frames[:3])
    # The deploy lands after the model was chosen but before the loop (and its SIGHUP handler) runs.
    swap.rollback(state, notify=False)
    runtime.run()
    assert runtime.bundle.directory == previous and runtime.reloads == 1


@pytest.mark.parametrize("meta", [{"labels": [1, 2, 3, 4]}, {"model": {"sha256": 5}}, "[]"])
def test_run_with_a_bad_model_json_is_a_clean_error(tmp_path, default_bundle, scenes_dir, capsys, meta):
    import shutil

    from maskipy.edge.cli import main

    bad = tmp_path / "bad"
    shutil.copytree(default_bundle, bad)
    saved = json.loads((bad / "model.json").read_text())
    body = meta if isinstance(meta, str) else json.dumps({**saved, **meta})
    (bad / "model.json").write_text(body)
    code = main(["run", "--model", str(bad), "--source", str(scenes_dir), "--state-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("maskipy-edge: error: ") and "model.json" in err


# --- stalls are recovered, pinged through, bounded, and end on SIGTERM -------------------------


@pytest.fixture
def notify_socket(tmp_path):
    """A datagram socket standing in for systemd: (address, messages) with arrival times."""
    import socket
    import threading

    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(0.1)
    messages: list[tuple[float, str]] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                messages.append((time.monotonic(), server.recv(4096).decode()))
            except TimeoutError:
                continue

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    yield str(path), messages
    done.set()
    listener.join(2.0)
    server.close()


def test_a_stalled_camera_is_pinged_through_reopened_and_ends_the_run_under_watchdog_sec(
        tmp_path, scene_frames, notify_socket):
    import threading

    from maskipy.edge.config import load_edge_config
    from maskipy.edge.errors import CameraError
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier
    from maskipy.edge.sources.replay import ReplaySource

    address, messages = notify_socket
    watchdog_sec = 1.0
    environ = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(int(watchdog_sec * 1e6))}
    notifier = SystemdNotifier(environ=environ)
    released, opens = threading.Event(), []

    def hanging_camera():
        yield scene_frames[0]
        released.wait(60.0)  # capture_array that never returns

    def opener():
        opens.append(time.monotonic())
        return ReplaySource(hanging_camera(), name="picamera2:0")

    config = (load_edge_config().replace("counts", state_dir=tmp_path / "state")
              .replace("camera", stall_seconds=0.5, max_restarts_per_minute=3))
    runtime = EdgeRuntime(config, notifier=notifier, source_opener=opener)
    started = time.monotonic()
    try:
        with pytest.raises(CameraError, match="no frames after 3 reopens"):
            runtime.run()
    finally:
        released.set()
    ended = time.monotonic()
    assert len(opens) == 4 and ended - started < 15
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip([started, *pings], [*pings, ended], strict=True)]
    assert max(gaps) < watchdog_sec, f"systemd would have killed the gate: a {max(gaps):.2f} s gap"


def test_reopens_spread_by_backoff_still_reach_the_restart_cap():
    from maskipy.edge.errors import CameraError
    from maskipy.edge.sources.replay import ReplaySource
    from maskipy.edge.sources.watchdog import SourceWatchdog

    now = [0.0]
    opens = []

    def opener():
        opens.append(now[0])
        return ReplaySource([None] * 10_000, name="cam")

    def sleep(seconds):
        now[0] += seconds

    watchdog = SourceWatchdog(opener, stall_seconds=10.0, max_restarts_per_minute=5, clock=lambda: now[0],
                              sleep=sleep)
    with pytest.raises(CameraError):
        while now[0] < 1000:
            now[0] += 0.5
            watchdog.read()
    # Stall 10 s plus a backoff up to 8 s: under 5 reopens in any minute, yet it gives up.
    assert len(opens) == 6 and now[0] < 120


class SilentServer:
    """A TCP server that accepts connections and then says nothing (or a few MJPEG frames first)."""

    def __init__(self, frames: list[bytes] = ()) -> None:
        import socket
        import threading

        self.frames = list(frames)
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/stream.mjpg"
        self.connections: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections.append(connection)
            if self.frames:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.0 200 OK\r\n"
                                   b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
                for jpeg in self.frames:
                    connection.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                       % len(jpeg) + jpeg + b"\r\n")

    def close(self) -> None:
        self.socket.close()
        for connection in self.connections:
            connection.close()


def test_a_stream_that_accepts_and_never_answers_fails_to_open_in_bounded_time(monkeypatch):
    from maskipy.edge.errors import CameraError
    from maskipy.edge.sources import opencv

    monkeypatch.setattr(opencv, "STREAM_OPEN_TIMEOUT_MS", 1000)
    server = SilentServer()
    started = time.monotonic()
    try:
        with pytest.raises(CameraError, match="OpenCV cannot open it"):
            opencv.OpenCVSource(server.url)
    finally:
        server.close()
    assert time.monotonic() - started < 5


def test_sigterm_during_a_hung_stream_stops_the_gate_within_5_s(tmp_path, scene_frames, default_bundle):
    import cv2

    jpeg = cv2.imencode(".jpg", scene_frames[0])[1].tobytes()
    server = SilentServer([jpeg] * 3)  # three frames, then the camera hangs with the connection open
    state = tmp_path / "state"
    config = tmp_path / "config.ini"
    config.write_text("[camera]\nstall_seconds = 60\n")
    gate = subprocess.Popen(gate_command(state, server.url, default_bundle, "--config", str(config)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (state / "heartbeat").is_file(), 60), "no frame ever arrived"
        time.sleep(1.0)  # the reader is now blocked on a stream that says nothing
        started = time.monotonic()
        gate.send_signal(signal.SIGTERM)
        _, err = gate.communicate(timeout=20)
        stopped = time.monotonic() - started
    finally:
        if gate.poll() is None:
            gate.kill()
        server.close()
    assert gate.returncode == 0, err[-2000:]
    assert stopped < 5.0, f"took {stopped:.1f} s to stop"


# --- labels are checked by meaning -------------------------------------------------------------


def permuted(bundle: Path, target: Path, first: str = "properly_masked", second: str = "unmasked") -> Path:
    import shutil

    shutil.copytree(bundle, target)
    meta = json.loads((target / "model.json").read_text())
    labels = meta["labels"]
    a, b = labels.index(first), labels.index(second)
    labels[a], labels[b] = labels[b], labels[a]
    (target / "model.json").write_text(json.dumps(meta))
    return target


def test_permuted_labels_are_refused_by_validation_and_install(tmp_path, default_bundle):
    from maskipy.edge.errors import ModelError
    from maskipy.edge.swap import cli as swap

    assert ("9 probe crops labelled right (properly_masked, unmasked, not_face)"
            in swap.validate_bundle(default_bundle).describe())
    bad = permuted(default_bundle, tmp_path / "permuted")
    with pytest.raises(ModelError, match="properly_masked probes classified as unmasked"):
        swap.validate_bundle(bad)
    with pytest.raises(ModelError, match="do not mean what they say"):
        swap.install_bundle(bad, tmp_path / "state", notify=False)
    assert current_bundle_dir(tmp_path / "state") is None
    # Even the swap that leaves both counted-and-probed faces alone: not_face probes pin the rest.
    with pytest.raises(ModelError, match="not_face probes classified as improperly_masked"):
        swap.validate_bundle(permuted(default_bundle, tmp_path / "p2", "improperly_masked", "not_face"))


def test_permuted_labels_in_place_are_refused_on_reload(tmp_path, default_bundle, scene_frames):
    from maskipy.edge.swap import cli as swap

    state = tmp_path / "state"
    swap.install_bundle(default_bundle, state, notify=False)
    current = current_bundle_dir(state)
    assert (current / "probes.npz").is_file()  # the probes travel with the installed copy
    runtime = gate(state, scene_frames[:1])
    try:
        meta = json.loads((current / "model.json").read_text())
        meta["labels"] = [{"properly_masked": "unmasked", "unmasked": "properly_masked"}.get(label, label)
                          for label in meta["labels"]]
        (current / "model.json").write_text(json.dumps(meta))
        assert runtime.reload_model() is False and runtime.classifier.labels[0] == "properly_masked"
    finally:
        runtime.close()


def test_a_bundle_without_probes_is_accepted_with_a_warning(tmp_path, default_bundle, caplog):
    import shutil

    from maskipy.edge.swap import cli as swap

    old = tmp_path / "old"
    shutil.copytree(default_bundle, old)
    meta = json.loads((old / "model.json").read_text())
    del meta["probes"]
    (old / "model.json").write_text(json.dumps(meta))
    (old / "probes.npz").unlink()
    assert "no probe crops" in swap.validate_bundle(old).describe()
    assert "labels' meaning is not checked" in caplog.text


def test_bundle_install_on_a_full_disk_leaves_no_staging_behind(tmpfs, default_bundle, capsys):
    from maskipy.edge.swap import cli as swap

    if tmpfs is None:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    state = tmpfs.path / "state"
    code = swap.main(["install", str(default_bundle), "--state-dir", str(state)])
    assert code == 1 and "No space left" in capsys.readouterr().err
    assert not list((state / "models").glob(".staging-*"))
    assert current_bundle_dir(state) is None


# --- bad input: clean errors, all at once ------------------------------------------------------


@pytest.mark.parametrize("line", ["[detector]\nscale_factor = nan", "[camera]\nstall_seconds = nan",
                                  "[tracking]\niou_threshold = nan", "[camera]\nstall_seconds = inf",
                                  "[counts]\nflush_seconds = -inf"])
def test_nan_and_inf_are_refused_by_every_float_setting(tmp_path, line):
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.errors import ConfigError

    path = tmp_path / "config.ini"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match="a finite number"):
        load_edge_config(path)


def test_every_config_error_is_reported_at_once(tmp_path, capsys):
    from maskipy.edge.cli import main

    path = tmp_path / "config.ini"
    path.write_text("[DEFAULT]\nfps = 5\n[camera]\nsource =\nfps = many\n[tracking]\niou_threshold = nan\n"
                    "[nonsense]\nx = 1\n")
    assert main(["run", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("maskipy-edge: error: ") and "Traceback" not in err
    for problem in ("[DEFAULT]: not supported", "source = : empty", "fps = many: not valid",
                    "iou_threshold = nan", "[nonsense]: unknown section"):
        assert problem in err, problem


def test_an_empty_source_is_refused_not_read_as_the_current_directory():
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.errors import CameraError
    from maskipy.edge.sources import open_source

    with pytest.raises(CameraError, match="source is empty"):
        open_source("  ", load_edge_config())


def write_png_bomb(path: Path, side: int = 20000) -> Path:
    """A real, valid PNG of side x side black pixels that compresses to about a megabyte."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + side)  # filter byte + grey pixels
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


def test_a_huge_image_in_the_folder_source_is_skipped_before_decoding(tmp_path, scenes_dir, caplog):
    import resource
    import shutil

    from maskipy.edge.sources.folder import FolderSource
    from maskipy.edge.sources.imagecheck import image_dimensions

    folder = tmp_path / "photos"
    folder.mkdir()
    bomb = write_png_bomb(folder / "a-bomb.png")
    assert image_dimensions(bomb) == (20000, 20000) and bomb.stat().st_size < 2_000_000
    first = sorted(scenes_dir.rglob("*.jpg"))[0]
    shutil.copy(first, folder / "b-photo.jpg")
    assert image_dimensions(folder / "b-photo.jpg")[::-1] == __import__("cv2").imread(str(first)).shape[:2]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    source = FolderSource(folder)
    frame = source.read()
    assert frame is not None and source.current.name == "b-photo.jpg"
    assert "too large to decode safely" in caplog.text
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: no 400 MB decode


def test_eval_skips_tiny_unreadable_and_huge_images_with_a_count(tmp_path, default_bundle, scenes_dir, capsys,
                                                               caplog):
    import shutil

    import cv2
    import numpy as np

    from maskipy.trainer.evaluate import main

    data = tmp_path / "set" / "unmasked"
    data.mkdir(parents=True)
    for path in sorted(scenes_dir.rglob("*.jpg"))[:2]:
        shutil.copy(path, data / path.name)
    cv2.imwrite(str(data / "tiny.png"), np.zeros((2, 38, 3), np.uint8))
    (data / "broken.jpg").write_bytes(b"not a jpeg")
    write_png_bomb(data / "bomb.png")
    out = tmp_path / "eval.json"
    assert main([str(default_bundle), str(tmp_path / "set"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 2 and len(result["skipped"]) == 3
    assert "skipped 3 of 5 images" in caplog.text


def test_eval_malformed_voc_xml_and_unwritable_json_are_clean_errors(tmp_path, default_bundle, scenes_dir,
                                                                    capsys):
    import shutil

    from maskipy.trainer.evaluate import main

    data = tmp_path / "set" / "unmasked"
    data.mkdir(parents=True)
    photo = sorted(scenes_dir.rglob("*.jpg"))[0]
    shutil.copy(photo, data / "a.jpg")
    (tmp_path / "dir.json").mkdir()
    assert main([str(default_bundle), str(tmp_path / "set"), "--json", str(tmp_path / "dir.json")]) == 1
    assert capsys.readouterr().err.startswith("maskipy-eval: error: ")
    (data / "a.xml").write_text("<annotation><object><bndbox><xmin>oops")
    assert main([str(default_bundle), str(tmp_path / "set"), "--detect"]) == 1
    err = capsys.readouterr().err
    assert "a.xml: not a valid VOC annotation" in err and "Traceback" not in err


def test_check_runs_the_detector_and_classifier_and_catches_a_malformed_cascade(tmp_path, scenes_dir,
                                                                                default_bundle, capsys):
    from maskipy.edge.cli import main

    common = ["--source", str(scenes_dir), "--model", str(default_bundle), "--state-dir", str(tmp_path / "s")]
    assert main(["check", *common]) == 0
    assert "✓ pipeline: detector and classifier ran on a" in capsys.readouterr().out
    cascade = tmp_path / "broken.xml"
    cascade.write_text('<?xml version="1.0"?>\n<opencv_storage><cascade>garbage')
    config = tmp_path / "config.ini"
    config.write_text(f"[detector]\ntype = haar\ncascades = {cascade}\n")
    assert main(["check", "--config", str(config), *common]) == 1
    assert "✗ pipeline: [detector] cascades" in capsys.readouterr().out
    assert main(["run", "--config", str(config), *common]) == 1
    err = capsys.readouterr().err
    assert err.startswith("maskipy-edge: error: [detector] cascades") and "Traceback" not in err


def test_a_run_whose_counts_could_not_be_saved_exits_non_zero(tmp_path, scenes_dir, default_bundle, capsys):
    from maskipy.edge.cli import main

    state = tmp_path / "state"
    (state / "totals.json").mkdir(parents=True)
    code = main(["run", "--source", str(scenes_dir), "--model", str(default_bundle),
                 "--state-dir", str(state)])
    err = capsys.readouterr().err
    assert code == 1 and "counts not saved" in err and "Traceback" not in err


def test_the_gate_keeps_alerting_and_counting_on_a_full_state_disk(tmpfs, scenes_dir, default_bundle,
                                                                   mock_factory, caplog):
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier

    if tmpfs is None:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    state = tmpfs.path / "state"
    state.mkdir()
    tmpfs.fill()
    config = (load_edge_config().replace("counts", state_dir=state)
              .replace("outputs", devices=("led", "log")))
    runtime = EdgeRuntime(config, source=str(scenes_dir), model=default_bundle, notifier=SystemdNotifier(""),
                          pin_factory=mock_factory)
    counts = runtime.run()
    assert runtime.timer.frames == 10 and sum(counts.values()) > 0
    assert any(s.state for s in mock_factory.pin(27).states + mock_factory.pin(17).states)
    assert runtime.status_line().startswith("DEGRADED (counts not saved")
    assert caplog.text.count("cannot save counts") == 1
    assert not list(state.glob("*.tmp"))


def test_the_gate_runs_on_a_read_only_state_dir(tmpfs, scenes_dir, default_bundle, capsys):
    from maskipy.edge.cli import main

    if tmpfs is None:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    state = tmpfs.path / "state"
    state.mkdir()
    tmpfs.readonly(True)
    try:
        code = main(["run", "--source", str(scenes_dir), "--model", str(default_bundle),
                     "--state-dir", str(state)])
    finally:
        tmpfs.readonly(False)
    out, err = capsys.readouterr()
    assert code == 1 and "10 frames" in out and "counts not saved" in err and "Traceback" not in err


def test_an_unreadable_subfolder_is_skipped_with_a_warning(scenes_dir):
    """Run as user nobody (root reads everything): the one fault here that needs a real permission."""
    import shutil
    import tempfile

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to drop to user nobody")
    top = Path(tempfile.mkdtemp(prefix="maskipy-faults-", dir="/tmp"))
    try:
        top.chmod(0o755)
        (top / "readable").mkdir()
        shutil.copy(sorted(scenes_dir.rglob("*.jpg"))[0], top / "readable" / "a.jpg")
        (top / "locked").mkdir(mode=0o000)
        (top / "locked").chmod(0o000)
        script = ("import logging; logging.basicConfig(); "
                  "from maskipy.edge.sources.folder import FolderSource; "
                  f"s = FolderSource({str(top)!r}); print(len(s.paths), s.read().shape)")
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        (top / "locked").chmod(0o755)
        shutil.rmtree(top)
    if "No module named" in result.stderr:
        pytest.skip("user nobody cannot import maskipy from this checkout")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 (") and "skipping an unreadable folder" in result.stderr


def test_a_bundle_the_service_user_cannot_read_is_a_clean_error(default_bundle, scenes_dir):
    import shutil
    import tempfile

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to drop to user nobody")
    top = Path(tempfile.mkdtemp(prefix="maskipy-faults-", dir="/tmp"))
    try:
        top.chmod(0o777)
        shutil.copytree(default_bundle, top / "bundle")
        (top / "bundle").chmod(0o700)  # root's, as an scp by the wrong user leaves it
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                 *gate_command(top / "state", scenes_dir, top / "bundle")],
                                capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(top)
    if "No module named" in result.stderr:
        pytest.skip("user nobody cannot import maskipy from this checkout")
    assert result.returncode == 1
    assert "maskipy-edge: error: " in result.stderr and "Traceback" not in result.stderr
    assert "Permission denied" in result.stderr


def test_a_hung_picamera2_capture_is_bounded_and_closed_only_after_it_returns(monkeypatch):
    """picamera2's capture_array has no timeout: a thin fake at the hardware boundary that hangs."""
    import threading
    import types

    import numpy as np

    from maskipy.edge.config import CameraConfig
    from maskipy.edge.sources import open_source
    from maskipy.edge.sources.watchdog import SourceWatchdog

    release = threading.Event()
    cameras = []

    class FakePicamera2:
        def __init__(self, index):
            self.captures, self.closed_while_capturing, self.capturing, self.closed = 0, False, False, False
            cameras.append(self)

        def create_video_configuration(self, **kwargs):
            return kwargs

        def configure(self, config):
            pass

        def start(self):
            pass

        def capture_array(self, name):
            self.captures += 1
            if self.captures > 1 and len(cameras) == 1:
                self.capturing = True
                release.wait(30.0)  # libcamera stopped delivering buffers
                self.capturing = False
            return np.zeros((48, 64, 3), np.uint8)

        def stop(self):
            self.closed_while_capturing |= self.capturing

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    watchdog = SourceWatchdog(lambda: open_source("picamera2", CameraConfig()), stall_seconds=0.5,
                              max_restarts_per_minute=3, backoff=0.1, poll_seconds=0.1)
    assert watchdog.read() is not None
    started, frames = time.monotonic(), 0
    while frames == 0 and time.monotonic() - started < 10:
        before = time.monotonic()
        frames += watchdog.read() is not None
        assert time.monotonic() - before < 0.5, "a read blocked the frame loop"
    assert frames == 1 and len(cameras) == 2  # given up on the hung camera, a new one delivers
    assert not cameras[0].closed  # never closed under a capture in flight ...
    release.set()
    assert wait_for(lambda: cameras[0].closed, 5.0)  # ... but as soon as the capture returns
    assert not cameras[0].closed_while_capturing
    watchdog.close()
