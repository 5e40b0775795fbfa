"""An operator's worst week, the host: a state disk that is full or read-only, files the service user
cannot read.

A full disk is a real 64 KiB tmpfs (``mount -t tmpfs -o size=64k``, the ``tmpfs`` fixture in
conftest) and a read-only one the same tmpfs remounted ``ro``; where the sandbox cannot mount (no
CAP_SYS_ADMIN), the full disk is ``/dev/full`` (every write: ENOSPC) and the read-only tests skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from faults_helpers import gate_command


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
