"""`maskipy-edge bundle install` says what the running gate actually loaded after its SIGHUP: the new
model, or the old one kept because the gate refused the new one (it used to report "reload signalled"
and success either way). A real `maskipy-edge run` process on a looping video is the gate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from conftest import wait_for

from maskipy.edge.service.running import RUNNING_FILE
from maskipy.edge.swap import cli as swap

REPO = Path(__file__).resolve().parent.parent


def renamed_reject_label(source: Path, target: Path, created_at: str) -> Path:
    """A copy of ``source`` whose not-a-face label is called ``background`` (a model trained for a
    gate configured with ``reject_label = background``)."""
    shutil.copytree(source, target)
    meta = json.loads((target / "model.json").read_text())
    rename = {"not_face": "background"}
    meta["labels"] = [rename.get(label, label) for label in meta["labels"]]
    meta["probes"]["labels"] = [rename.get(label, label) for label in meta["probes"]["labels"]]
    meta["created_at"] = created_at
    (target / "model.json").write_text(json.dumps(meta))
    return target


def test_install_reports_what_the_running_gate_loaded_or_refused(tmp_path, default_bundle, scene_frames,
                                                                  make_video, capsys):
    labels = ("properly_masked", "improperly_masked", "unmasked")
    state = tmp_path / "state"
    first = renamed_reject_label(default_bundle, tmp_path / "first", "2026-03-01T00:00:00+00:00")
    second = renamed_reject_label(default_bundle, tmp_path / "second", "2026-03-02T00:00:00+00:00")
    swap.install_bundle(first, state, labels, reject_label="background", notify=False)
    config = tmp_path / "gate.ini"
    config.write_text("[camera]\nloop = yes\n[classifier]\nreject_label = background\n")
    video = make_video([scene_frames[0]] * 5)
    gate = subprocess.Popen([sys.executable, "-m", "maskipy.edge.cli", "run", "--config", str(config),
                             "--source", str(video), "--state-dir", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(gate.stderr), daemon=True).start()
    try:
        wait_for(lambda: (state / RUNNING_FILE).exists() or gate.poll() is not None, timeout=60)
        assert json.loads((state / RUNNING_FILE).read_text())["pid"] == gate.pid, "".join(lines)

        # Installed with the gate's labels: the gate says it runs it.
        code = swap.main(["install", str(second), "--state-dir", str(state), "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 0, out
        running = json.loads((state / RUNNING_FILE).read_text())
        assert f"the gate (pid {gate.pid}) now runs {running['name']}" in out, out
        assert running["name"] != first.name and running["reload"]["ok"] is True

        # Installed with the defaults' labels (not_face): validation passes, the gate refuses it.
        code = swap.main(["install", str(default_bundle), "--state-dir", str(state)])
        captured = capsys.readouterr()
        assert code == 1, captured.out
        refused = f"the gate (pid {gate.pid}) refused it and keeps {running['name']}"
        assert refused in captured.err, captured.err
        assert "unexpected: not_face" in captured.err
        assert swap.main(["status", "--state-dir", str(state)]) == 0
        assert f"running (pid {gate.pid}), model {running['name']}" in capsys.readouterr().out
        assert gate.poll() is None, "".join(lines)
    finally:
        gate.terminate()
        gate.wait(timeout=30)
