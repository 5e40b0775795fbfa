"""An operator's worst week, bad bundles: a bad model never bricks the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faults_helpers import gate

from maskipy.edge.bundle import current_bundle_dir, previous_bundle_dir


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


def test_a_deleted_current_version_keeps_the_running_model_on_reload(installed, scene_frames, caplog):
    """`rm -r` of the running version directory, then SIGHUP: the gate must not silently switch to
    the built-in model; it keeps the one it runs and says how to choose another."""
    import shutil

    state, current, _ = installed
    runtime = gate(state, scene_frames[:2])
    try:
        running = runtime.classifier
        shutil.rmtree(current)
        assert runtime.reload_model() is False
        assert runtime.bundle.directory == current and runtime.classifier is running
        assert "the deployed model is gone" in caplog.text and "maskipy-edge bundle rollback" in caplog.text
    finally:
        runtime.close()


def hand_copy_over_current(state: Path, source: Path) -> Path:
    """What an operator does without the installer: replace the ``current`` link with a real folder."""
    import shutil

    current = state / "models" / "current"
    current.unlink()
    shutil.copytree(source, current)
    return current


def test_a_hand_copied_current_folder_keeps_the_running_model_on_reload(installed, scene_frames, caplog):
    """`cp -r bundle current` over the link, then SIGHUP: the gate does not load a folder the store
    does not manage, so it must not silently switch to the built-in model either; it keeps the one
    it runs and says how to install the folder."""
    state, current, _ = installed
    runtime = gate(state, scene_frames[:2])
    try:
        running = runtime.classifier
        folder = hand_copy_over_current(state, current)
        assert runtime.reload_model() is False
        assert runtime.bundle.directory == current and runtime.classifier is running
        assert f"{folder} is a folder" in caplog.text and "maskipy-edge bundle install" in caplog.text
    finally:
        runtime.close()


def test_a_hand_copied_current_folder_at_start_is_a_loud_fallback(installed, scene_frames, caplog):
    """At start the same folder is not loaded either: the gate runs the previous model and says why,
    in the log and in its status, instead of starting on another model without a word."""
    state, current, previous = installed
    hand_copy_over_current(state, current)
    runtime = gate(state, scene_frames[:2])
    try:
        assert runtime.bundle.directory == previous
        assert runtime.status_line().startswith("DEGRADED (fallback to the previous")
        assert "is a folder" in caplog.text and "maskipy-edge bundle install" in caplog.text
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


# A child that loads the classifier, lets the parent's "hand deploy" rewrite the model file, then
# classifies: with a memory-mapped model that is SIGBUS (no log line, LEDs off).
_CLASSIFY_AFTER_REWRITE = """
import os, sys
import numpy as np
from pathlib import Path
from maskipy.edge.bundle import load_bundle
from maskipy.edge.classifier.tflite import TFLiteClassifier
bundle = load_bundle(Path(sys.argv[1]))
classifier = TFLiteClassifier(bundle, num_threads=1)
model = bundle.directory / "model.tflite"
was = model.stat().st_size
with open(model, "r+b") as handle:      # as cp does: truncate in place, then write
    handle.truncate(0)
    handle.flush()
    os.fsync(handle.fileno())
size = bundle.crop_spec.size
crop = np.zeros((1, size, size, 3), dtype=np.uint8)
print(len(classifier.classify(crop)), "faces classified after the file was cut from", was, "bytes")
"""


def test_a_model_file_rewritten_under_the_running_gate_cannot_kill_it(tmp_path, default_bundle):
    """`cp new.tflite .../current/model.tflite` while the gate runs: the running model is the gate's own
    copy in memory, so the rewrite cannot pull the floor from under it (SIGBUS in 2 of 28 tries)."""
    import shutil
    import subprocess
    import sys

    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle, bundle)
    done = subprocess.run([sys.executable, "-c", _CLASSIFY_AFTER_REWRITE, str(bundle)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert "1 faces classified" in done.stdout, done.stdout
