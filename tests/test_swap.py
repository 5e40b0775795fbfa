"""edge/swap.py: validating, swapping in, rolling back and reloading model bundles on the Pi."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from maskipy.edge.bundle import META_FILE, MODEL_FILE, current_bundle_dir, previous_bundle_dir
from maskipy.edge.errors import DeployError, ModelError
from maskipy.edge.service.pidfile import PID_FILE
from maskipy.edge.swap import cli as swap


def edit_bundle(source: Path, target: Path, *, model: bytes | None = None, fix_sha: bool = True,
                **meta_changes: object) -> Path:
    """A copy of ``source`` with a new model file and/or model.json fields (sha256 fixed unless asked)."""
    shutil.copytree(source, target)
    if model is not None:
        (target / MODEL_FILE).write_bytes(model)
    meta = json.loads((target / META_FILE).read_text())
    meta.update(meta_changes)
    if fix_sha:
        meta["model"]["sha256"] = hashlib.sha256((target / MODEL_FILE).read_bytes()).hexdigest()
    (target / META_FILE).write_text(json.dumps(meta))
    return target


@pytest.fixture
def bundle(tiny_bundle: Path) -> Path:
    """The session's tiny, really trained int8 bundle (conftest.py)."""
    return tiny_bundle


@pytest.fixture
def labels(bundle: Path) -> tuple[str, ...]:
    names = json.loads((bundle / META_FILE).read_text())["labels"]
    return tuple(label for label in names if label != "not_face")


@pytest.fixture(autouse=True)
def _no_service_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a real /etc/maskipy or /var/lib/maskipy on the test machine out of the CLI's defaults."""
    monkeypatch.setattr(swap, "SERVICE_CONFIG", tmp_path / "absent-config.ini")
    monkeypatch.setattr(swap, "SERVICE_STATE_DIR", tmp_path / "absent-state")


def state_files(state: Path) -> dict[str, str]:
    """Every path under ``state`` with its symlink target or content hash: a snapshot to compare."""
    snapshot = {}
    for path in sorted(state.rglob("*")):
        if path.is_symlink():
            snapshot[str(path.relative_to(state))] = "-> " + os.readlink(path)
        elif path.is_file():
            snapshot[str(path.relative_to(state))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return snapshot


def test_install_makes_a_synced_copy_current(bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert current_bundle_dir(state) is None
    result = swap.install_bundle(bundle, state, labels)
    current = current_bundle_dir(state)
    assert current == result.current and current.parent == state / "models"
    assert (current / MODEL_FILE).read_bytes() == (bundle / MODEL_FILE).read_bytes()
    assert (state / "models" / "current").is_symlink()
    assert not os.readlink(state / "models" / "current").startswith("/"), "relative, so the dir can move"
    assert result.previous is None and result.reload_ok
    assert "no pid file" in result.reload
    assert not list((state / "models").glob(".*tmp")) and not list((state / "models").glob(".staging-*"))


def test_second_install_keeps_previous_and_rollback_restores_it(
        bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = swap.install_bundle(bundle, state, labels).current
    second_bundle = edit_bundle(bundle, tmp_path / "v2", note="second")
    second = swap.install_bundle(second_bundle, state, labels)
    assert second.current != first and second.previous == first
    assert previous_bundle_dir(state) == first

    back = swap.rollback(state, labels)
    assert current_bundle_dir(state) == first and back.previous == second.current
    assert previous_bundle_dir(state) == second.current


def test_reinstalling_the_current_bundle_keeps_the_real_previous(
        bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = swap.install_bundle(bundle, state, labels).current
    second = swap.install_bundle(edit_bundle(bundle, tmp_path / "v2", note="2"), state, labels).current
    again = swap.install_bundle(tmp_path / "v2", state, labels)
    assert again.action.startswith("already current") and again.current == second
    assert previous_bundle_dir(state) == first


@pytest.mark.parametrize("damage", ["bad_sha256", "wrong_labels", "truncated", "golden_mismatch"])
def test_a_bad_bundle_is_refused_and_current_is_untouched(
        damage: str, bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    state = tmp_path / "state"
    swap.install_bundle(bundle, state, labels)
    before = state_files(state)
    data = (bundle / MODEL_FILE).read_bytes()
    bad = tmp_path / "bad"
    expected = {"bad_sha256": "sha256", "wrong_labels": "labels", "truncated": "cannot load",
                "golden_mismatch": "golden output differs"}[damage]
    if damage == "bad_sha256":
        edit_bundle(bundle, bad, model=data[:-8] + bytes(8), fix_sha=False)
    elif damage == "wrong_labels":
        meta = json.loads((bundle / META_FILE).read_text())
        edit_bundle(bundle, bad, labels=[f"class_{i}" for i in range(len(meta["labels"]))])
    elif damage == "truncated":
        edit_bundle(bundle, bad, model=data[: len(data) // 2])
    else:
        n = len(json.loads((bundle / META_FILE).read_text())["labels"])
        wrong = np.eye(n, dtype=float)[:1].tolist()  # all certainty on one class: not what it outputs
        edit_bundle(bundle, bad, golden={"seed": 0, "probabilities": wrong, "tolerance": 0.05})
    with pytest.raises(ModelError, match=expected):
        swap.install_bundle(bad, state, labels)
    assert state_files(state) == before


def hand_copied_current(bundle: Path, state: Path, work: Path) -> None:
    """What an operator does who deploys by hand: ``models/current`` made a real folder of bundle files."""
    current = state / "models" / "current"
    if current.is_symlink():
        current.unlink()
    current.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(edit_bundle(bundle, work / "by-hand", note="copied by hand"), current)


@pytest.mark.parametrize(("layout", "incoming"),
                         [("fresh", "good"), ("installed", "good"), ("installed", "bad")])
def test_a_failed_install_over_a_hand_copied_current_folder_leaves_everything_as_it_was(
        layout: str, incoming: str, bundle: Path, labels: tuple[str, ...], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    if layout == "installed":
        swap.install_bundle(bundle, state, labels)
    hand_copied_current(bundle, state, tmp_path)
    before = state_files(state)
    source = (edit_bundle(bundle, tmp_path / "v2", note="2") if incoming == "good" else
              edit_bundle(bundle, tmp_path / "bad", model=b"not a model", fix_sha=False))
    assert swap.main(["bundle", "install", str(source), "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("maskipy-edge: error:") and "Traceback" not in err
    # Nothing half-done: no new version folder, no stray link, the operator's folder and files untouched.
    assert state_files(state) == before
    if incoming == "good":
        current = state / "models" / "current"
        assert f"{current} is a folder" in err and "by hand" in err and "nothing was changed" in err
        assert f"mv {current} " in err, "it says how to keep the folder and go on"


def test_a_rollback_over_a_hand_copied_current_folder_leaves_everything_as_it_was(
        bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    state = tmp_path / "state"
    swap.install_bundle(bundle, state, labels)
    swap.install_bundle(edit_bundle(bundle, tmp_path / "v2", note="2"), state, labels)
    hand_copied_current(bundle, state, tmp_path)
    before = state_files(state)
    with pytest.raises(DeployError, match="by hand"):
        swap.rollback(state, labels)
    assert state_files(state) == before


def test_a_switch_that_fails_halfway_puts_previous_back_and_leaves_no_new_version(
        bundle: Path, labels: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    swap.install_bundle(bundle, state, labels)
    swap.install_bundle(edit_bundle(bundle, tmp_path / "v2", note="2"), state, labels)
    before = state_files(state)
    replace = os.replace

    def refuse_current(source, target, *args, **kwargs):  # previous is switched, then current fails
        if Path(target).name == "current":
            raise OSError(28, "No space left on device")
        return replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse_current)
    with pytest.raises(OSError, match="No space"):
        swap.install_bundle(edit_bundle(bundle, tmp_path / "v3", note="3"), state, labels)
    monkeypatch.undo()
    assert state_files(state) == before, "current and previous as they were, no v3 and no stray link"


def test_golden_output_within_tolerance_passes(bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    from maskipy.edge.bundle import load_bundle
    from maskipy.edge.classifier.tflite import TFLiteClassifier

    loaded = load_bundle(bundle)
    size = loaded.crop_spec.size
    crop = np.random.default_rng(7).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    probs = TFLiteClassifier(loaded, num_threads=1).scores(crop)  # golden: the model's own softmax
    good = edit_bundle(bundle, tmp_path / "golden",
                       golden={"seed": 7, "probabilities": probs.tolist(), "tolerance": 0.05})
    validation = swap.validate_bundle(good, labels)
    assert validation.golden_diff is not None and validation.golden_diff <= 0.05
    assert "golden output within" in validation.describe()


@contextmanager
def reload_recorder_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A real process (its command line names maskipy, like the service) that logs each SIGHUP."""
    script, log, ready = tmp_path / "fake_maskipy_edge.py", tmp_path / "hups.log", tmp_path / "ready"
    script.write_text(
        "import pathlib, signal, sys, time\n"
        "log = pathlib.Path(sys.argv[1])\n"
        "signal.signal(signal.SIGHUP, lambda *_: log.open('a').write('HUP\\n'))\n"
        "pathlib.Path(sys.argv[2]).write_text('ready')\n"
        "while True:\n    time.sleep(0.05)\n")
    child = subprocess.Popen([sys.executable, str(script), str(log), str(ready)])
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the reload recorder did not start"
        yield child, log
    finally:
        child.terminate()
        child.wait(timeout=10)


@pytest.fixture
def reload_recorder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    with reload_recorder_process(tmp_path) as recorder:
        yield recorder


def wait_for_hups(log: Path, count: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("HUP") >= count:
            break
        time.sleep(0.05)
    return log.read_text().count("HUP") if log.exists() else 0


def test_install_and_rollback_signal_the_running_service(
        bundle: Path, labels: tuple[str, ...], tmp_path: Path, reload_recorder) -> None:
    child, log = reload_recorder
    state = tmp_path / "state"
    state.mkdir()
    (state / PID_FILE).write_text(f"{child.pid}\n")
    result = swap.install_bundle(bundle, state, labels)
    assert result.reload_ok and f"SIGHUP to pid {child.pid}" in result.reload
    assert wait_for_hups(log, 1) == 1
    swap.install_bundle(edit_bundle(bundle, tmp_path / "v2", note="2"), state, labels)
    swap.rollback(state, labels)
    assert wait_for_hups(log, 3) == 3
    assert child.poll() is None


def test_a_stale_pid_is_not_signalled(bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"])  # SIGHUP would kill it: it must be left alone
    try:
        state = tmp_path / "state"
        state.mkdir()
        (state / PID_FILE).write_text(str(stranger.pid))
        result = swap.install_bundle(bundle, state, labels)
        assert result.reload_ok and "stale" in result.reload
        time.sleep(0.2)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_rollback_without_previous_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no previous bundle"):
        swap.rollback(tmp_path / "state")


def test_old_versions_are_pruned_but_pinned_ones_kept(
        bundle: Path, labels: tuple[str, ...], tmp_path: Path) -> None:
    state = tmp_path / "state"
    installed = [swap.install_bundle(edit_bundle(bundle, tmp_path / f"v{i}", note=str(i)), state, labels,
                                     keep=2).current for i in range(4)]
    swap.rollback(state, labels)
    kept = {p for p in (state / "models").iterdir() if p.name.startswith("v")}
    assert kept == set(installed[2:])


def test_dangling_current_reads_as_none(tmp_path: Path) -> None:
    models = tmp_path / "state" / "models"
    models.mkdir(parents=True)
    (models / "current").symlink_to("gone")
    assert current_bundle_dir(tmp_path / "state") is None


def test_cli_install_status_rollback_validate(
        bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = str(tmp_path / "state")
    assert swap.main(["bundle", "install", str(bundle), "--state-dir", state]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "installed" in out and "service not running" in out
    assert swap.main(["status", "--state-dir", state]) == 0
    assert "current" in capsys.readouterr().out
    assert swap.main(["validate", str(bundle)]) == 0
    assert swap.main(["rollback", "--state-dir", state]) == 1
    assert "maskipy-edge: error:" in capsys.readouterr().err


def test_cli_errors_are_one_line_and_return_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert swap.main(["validate", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("maskipy-edge: error:") and "Traceback" not in err
    assert swap.main(["frobnicate"]) == 2  # argparse usage error, returned rather than raised


def test_cli_version_through_both_entry_points(capsys: pytest.CaptureFixture[str]) -> None:
    """``maskipy-edge bundle --version`` answers as every maskipy command does, and returns 0."""
    from importlib.metadata import version

    from maskipy.edge.cli import main as edge_main

    assert swap.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"maskipy-edge bundle {version('maskipy')}"
    assert edge_main(["bundle", "--version"]) == 0
    assert capsys.readouterr().out.strip() == f"maskipy-edge bundle {version('maskipy')}"


def test_cli_ctrl_c_exits_130_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(state_dir: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(swap, "bundle_status", interrupted)
    assert swap.main(["status", "--state-dir", str(tmp_path / "state")]) == 130
    assert capsys.readouterr().err == "maskipy-edge: interrupted\n"


def test_cli_errors_carry_the_journal_priority(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Under systemd (stderr is the journal) an error line starts with <3>: `journalctl -p err` shows it."""
    from maskipy.edge import cli_runner

    monkeypatch.setattr(cli_runner, "stderr_is_journal", lambda: True)
    assert swap.main(["validate", str(tmp_path / "nowhere")]) == 1
    assert capsys.readouterr().err.startswith("<3>maskipy-edge: error:")
