"""The maskipy-edge command: run on real scenes with mock GPIO, check, example-config, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from maskipy.edge.cli import main
from maskipy.edge.config import load_edge_config

REPO = Path(__file__).resolve().parent.parent


def test_example_config_prints_a_loadable_ini(capsys, tmp_path):
    assert main(["example-config"]) == 0
    text = capsys.readouterr().out
    assert "[camera]" in text and "[preview]" in text
    (tmp_path / "c.ini").write_text(text)
    assert load_edge_config(tmp_path / "c.ini").camera.source == "picamera2"


def test_config_error_is_one_line_without_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DEBUG", raising=False)
    bad = tmp_path / "bad.ini"
    bad.write_text("[camera]\nfps = 0\n")
    assert main(["run", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"maskipy-edge: error: {bad} [camera] fps = 0: out of range")
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEBUG", "1")
    assert main(["run", "--config", str(tmp_path / "absent.ini")]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_check_reports_each_step(tmp_path, capsys, bundle_dir, scenes_dir, mock_factory):
    config = tmp_path / "c.ini"
    config.write_text(f"[outputs]\ndevices = led, buzzer, log\n[classifier]\nmodel = {bundle_dir}\n")
    code = main(["check", "--config", str(config), "--source", str(scenes_dir),
                 "--state-dir", str(tmp_path / "state")])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in ("config", "model", "source", "gpio", "state"):
        assert f"✓ {name}: " in out


def test_check_fails_on_a_missing_source_and_a_bad_model(tmp_path, capsys):
    code = main(["check", "--source", str(tmp_path / "nowhere.mp4"), "--model", str(tmp_path / "nomodel"),
                 "--state-dir", str(tmp_path / "state")])
    out = capsys.readouterr().out
    assert code == 1
    assert "✓ config: defaults" in out
    assert "✗ model: " in out and "bundle directory not found" in out
    assert "✗ source: " in out and "nowhere.mp4" in out


def test_bundle_is_handed_to_the_bundle_manager(capsys, tmp_path, bundle_dir):
    assert main(["bundle", "status", "--state-dir", str(tmp_path)]) == 0
    assert str(tmp_path) in capsys.readouterr().out
    assert main(["bundle", "install", str(bundle_dir), "--state-dir", str(tmp_path)]) == 0
    assert (tmp_path / "models" / "current").is_symlink()
    # The deployed bundle is what `check` then loads.
    assert main(["check", "--state-dir", str(tmp_path), "--source", str(tmp_path / "none.mp4")]) == 1
    out = capsys.readouterr().out
    assert f"✓ model: {(tmp_path / 'models' / 'current').resolve()}" in out, out


def test_run_on_the_scenes_counts_logs_and_drives_mock_pins(tmp_path, default_bundle, scenes_dir, capsys,
                                                           mock_factory, monkeypatch):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    config = tmp_path / "c.ini"
    config.write_text("[outputs]\ndevices = led, buzzer, log\nbeep_on_seconds = 0.01\n"
                      f"beep_off_seconds = 0.01\n[preview]\nannotate_dir = {tmp_path / 'annotated'}\n")
    state = tmp_path / "state"
    code = main(["run", "--config", str(config), "--source", str(scenes_dir), "--model", str(default_bundle),
                 "--state-dir", str(state), "--max-frames", "20"])
    out = capsys.readouterr().out
    assert code == 0
    this_run = out.split("totals kept in")[0]  # this run's counts come first, then the state's totals
    printed = dict(line.strip().split(": ") for line in this_run.splitlines() if ": " in line)
    assert set(printed) == {"properly_masked", "improperly_masked", "unmasked"}
    total = sum(int(v) for v in printed.values())
    assert out.startswith("10 frames") and total > 0
    events = [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]
    assert len(events) == total and all(len(e["box"]) == 4 and e["label"] in printed for e in events)
    assert len(list((tmp_path / "annotated").glob("*.jpg"))) == 10
    # The scenes hold masked and unmasked people: each LED must have lit (a mock pin records its
    # initial off state too, so counting states alone would pass with LEDs that never lit).
    labels = {e["label"] for e in events}
    assert "properly_masked" in labels and labels & {"improperly_masked", "unmasked"}, labels
    for pin in (17, 27, 22):  # green LED, red LED, buzzer
        states = [s.state for s in mock_factory.pin(pin).states]
        assert any(states), f"pin {pin} never went on: {states}"
        assert not states[-1], f"pin {pin} left on after the run"


def test_the_entry_point_runs_as_a_process():
    result = subprocess.run([sys.executable, "-c", "from maskipy.edge.cli import main; "
                             "raise SystemExit(main(['example-config']))"],
                            capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0 and "[classifier]" in result.stdout


def test_sighup_reloads_and_sigterm_flushes_a_real_process(tmp_path, bundle_dir, scene_frames, make_video):
    import signal
    import threading
    import time

    video = make_video([scene_frames[0]] * 5)
    state = tmp_path / "state"
    config = tmp_path / "c.ini"
    config.write_text("[camera]\nloop = yes\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "maskipy.edge.cli", "run", "--config", str(config), "--source", str(video),
         "--model", str(bundle_dir), "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()

    def wait_for(text: str) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if any(text in line for line in lines):
                return True
            time.sleep(0.05)
        return False

    try:
        assert wait_for("running with model"), "".join(lines)
        assert (state / "maskipy-edge.pid").read_text().strip() == str(process.pid)
        process.send_signal(signal.SIGHUP)
        assert wait_for("reload: now using model"), "".join(lines)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    assert process.returncode == 0, "".join(lines)
    assert "properly_masked: " in out and "unmasked: " in out
    assert (state / "totals.json").is_file() and not (state / "maskipy-edge.pid").exists()


def test_check_says_to_stop_a_running_gate_first(tmp_path, capsys):
    """The service holds the camera (libcamera: one process per camera) and the GPIO lines."""
    state = tmp_path / "state"
    state.mkdir()
    gate = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "maskipy-edge"])
    try:
        # Its /proc/PID/cmdline reads empty until exec completes: wait for the command line.
        cmdline = Path(f"/proc/{gate.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"maskipy-edge" not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        (state / "maskipy-edge.pid").write_text(f"{gate.pid}\n")
        code = main(["check", "--state-dir", str(state), "--source", str(tmp_path / "none.mp4")])
        out = capsys.readouterr().out
        assert code == 1
        assert f"✗ service: maskipy-edge is already running (pid {gate.pid}" in out
        assert "sudo systemctl stop maskipy-edge" in out and "✓ model" not in out
    finally:
        gate.kill()
        gate.wait()
    # Once it is gone the pid file is stale: check goes on to the real checks.
    assert main(["check", "--state-dir", str(state), "--source", str(tmp_path / "none.mp4")]) == 1
    out = capsys.readouterr().out
    assert "✗ service" not in out and "✗ source: " in out


def test_a_password_in_a_world_readable_config_is_warned_about_by_check_and_run(tmp_path, capsys, caplog):
    """install.sh and sudoedit keep a config 0644: every local user could read the MQTT password."""
    import logging

    config = tmp_path / "c.ini"
    config.write_text("[mqtt]\npassword = hunter2\n[http]\npassword = s3cret\n")
    config.chmod(0o644)
    absent = str(tmp_path / "nowhere")
    with caplog.at_level(logging.WARNING, logger="maskipy"):
        main(["check", "--config", str(config), "--source", absent, "--state-dir", str(tmp_path / "s")])
        main(["run", "--config", str(config), "--source", absent, "--state-dir", str(tmp_path / "s")])
    warnings = [r.getMessage() for r in caplog.records if "every user" in r.getMessage()]
    assert len(warnings) == 2, caplog.text
    assert "[mqtt] password and [http] password" in warnings[0] and "mode 0644" in warnings[0]
    assert f"chmod 0640 {config}" in warnings[0] and "hunter2" not in caplog.text + capsys.readouterr().out
    caplog.clear()
    config.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="maskipy"):
        main(["check", "--config", str(config), "--source", absent, "--state-dir", str(tmp_path / "s")])
    assert "every user" not in caplog.text


def test_a_negative_frame_limit_is_refused_with_the_fix(capsys):
    try:
        main(["run", "--max-frames", "-3"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("--max-frames -3 was accepted")
    err = capsys.readouterr().err
    assert "--max-frames: -3 is negative; give 0 or more (0: open the source and stop)" in err, err


def test_a_missing_source_path_is_not_called_a_video_file(tmp_path, capsys):
    for spec in (tmp_path / "no_such_folder", tmp_path / "gone.mp4"):
        assert main(["run", "--source", str(spec), "--state-dir", str(tmp_path / "s")]) == 1
        err = capsys.readouterr().err
        assert f"{spec}: no such file or folder; " in err and "video file not found" not in err, err


def test_check_off_a_pi_says_why_gpio_fails_and_the_fix_without_raw_warnings(tmp_path, capsys, monkeypatch):
    """No pin factory (not a Pi, no lgpio): one line naming what gpiozero tried and the fix, not its
    PinFactoryFallback warnings."""
    from gpiozero import Device

    if Path("/proc/device-tree/model").exists():
        import pytest

        pytest.skip("a Raspberry Pi: its pin factory loads")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    code = main(["check", "--config", str(REPO / "config.ini"), "--source", str(tmp_path / "none"),
                 "--state-dir", str(tmp_path / "s")])
    captured = capsys.readouterr()
    assert code == 1
    line = next(x for x in captured.out.splitlines() if x.startswith("✗ gpio: "))
    assert "no GPIO pin factory could load (lgpio: No module named 'lgpio'" in line, line
    assert "sudo apt install python3-lgpio" in line and "GPIOZERO_PIN_FACTORY=mock" in line, line
    assert "PinFactoryFallback" not in captured.err + captured.out
