"""The frame loop end to end on real images and a real video: counts, timings, reload, stop."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for

from maskipy.edge.bundle import load_bundle
from maskipy.edge.classifier.load import resolve_model
from maskipy.edge.config import load_edge_config
from maskipy.edge.runtime import EdgeRuntime
from maskipy.edge.service.sdnotify import SystemdNotifier
from maskipy.edge.sources.replay import ReplaySource
from maskipy.edge.stats import STAGES


def make_config(tmp_path: Path, text: str = ""):
    path = tmp_path / "config.ini"
    path.write_text(f"[counts]\nstate_dir = {tmp_path / 'state'}\n{text}", encoding="utf-8")
    return load_edge_config(path)




def read_events(state: Path) -> list[dict]:
    path = state / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_folder_of_scenes_counts_each_face_and_times_each_stage(tmp_path, bundle_dir, scenes_dir):
    config = make_config(tmp_path, f"[preview]\nannotate_dir = {tmp_path / 'annotated'}\n")
    runtime = EdgeRuntime(config, source=str(scenes_dir), model=bundle_dir, notifier=SystemdNotifier(""))
    counts = runtime.run()
    timing = runtime.timer.as_dict()
    assert timing["frames"] == timing["inferred_frames"] == 10
    assert timing["faces"] >= 5  # Haar finds faces in most of the ten photos
    assert set(timing["seconds"]) == set(STAGES) and timing["seconds"]["detect"] > 0
    assert set(counts) <= set(config.classifier.labels)
    assert 0 < sum(counts.values()) <= timing["faces"]
    events = read_events(tmp_path / "state")
    assert len(events) == sum(counts.values())
    totals = json.loads((tmp_path / "state" / "totals.json").read_text())["totals"]
    assert {k: v for k, v in totals.items() if v} == counts
    assert len(list((tmp_path / "annotated").glob("*.jpg"))) == 10
    assert (tmp_path / "state" / "heartbeat").is_file()


def test_a_person_in_a_video_is_counted_once_not_per_frame(tmp_path, bundle_dir, scene_frames, make_video):
    video = make_video([scene_frames[0]] * 12, name="gate.avi")
    config = make_config(tmp_path, "[tracking]\nvote_frames = 5\nmin_votes = 3\n")
    runtime = EdgeRuntime(config, source=str(video), model=bundle_dir, notifier=SystemdNotifier(""))
    counts = runtime.run()
    timing = runtime.timer.as_dict()
    # Faces are found on the frames the detector runs on ([detector] every_n_frames).
    faces_per_frame = timing["faces"] / timing["inferred_frames"]
    assert timing["frames"] == 12 and faces_per_frame >= 1
    assert 1 <= sum(counts.values()) <= faces_per_frame  # once per person, not once per frame
    assert len(read_events(tmp_path / "state")) == sum(counts.values())


def test_every_n_frames_reuses_tracks_between_detections(tmp_path, bundle_dir, scene_frames):
    config = make_config(tmp_path, "[detector]\nevery_n_frames = 3\n")
    source = ReplaySource([scene_frames[0]] * 7)
    runtime = EdgeRuntime(config, model=bundle_dir, source_opener=lambda: source,
                          notifier=SystemdNotifier(""))
    runtime.run()
    assert runtime.timer.as_dict()["inferred_frames"] == 3  # frames 0, 3 and 6
    assert source.closed


def test_max_frames_stops_a_looping_source(tmp_path, bundle_dir, scene_frames):
    config = make_config(tmp_path)
    runtime = EdgeRuntime(config, model=bundle_dir, notifier=SystemdNotifier(""),
                          source_opener=lambda: ReplaySource(scene_frames[:2], loop=True))
    runtime.run(max_frames=5)
    assert runtime.timer.frames == 5


def run_in_thread(runtime: EdgeRuntime) -> threading.Thread:
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    return thread


def test_reload_keeps_the_old_model_when_the_new_one_is_bad_and_takes_a_good_one(
        tmp_path, bundle_dir, scene_frames):
    model = tmp_path / "bundle"
    shutil.copytree(bundle_dir, model)
    runtime = EdgeRuntime(make_config(tmp_path), model=model, notifier=SystemdNotifier(""),
                          source_opener=lambda: ReplaySource(scene_frames[:3], loop=True))
    old = runtime.bundle
    thread = run_in_thread(runtime)
    try:
        assert wait_for(lambda: runtime.timer.frames >= 3)
        with open(model / "model.tflite", "ab") as handle:
            handle.write(b"corrupt")
        runtime.request_reload()
        assert wait_for(lambda: runtime.reload_failures == 1)
        frames = runtime.timer.frames
        assert wait_for(lambda: runtime.timer.frames > frames + 2), "the loop must go on"
        assert runtime.bundle is old and thread.is_alive()
        shutil.copy(bundle_dir / "model.tflite", model / "model.tflite")
        runtime.request_reload()
        assert wait_for(lambda: runtime.reloads == 1)
        assert runtime.bundle is not old and runtime.bundle.sha256 == old.sha256
        assert runtime.classifier.bundle is runtime.bundle
    finally:
        runtime.stop()
        thread.join(20.0)
    assert not thread.is_alive() and runtime.reload_failures == 1


def test_stop_flushes_counts_and_releases_gpio(tmp_path, bundle_dir, scene_frames, mock_factory):
    config = make_config(tmp_path, "[outputs]\ndevices = led, buzzer, log\n")
    runtime = EdgeRuntime(config, model=bundle_dir, notifier=SystemdNotifier(""), pin_factory=mock_factory,
                          source_opener=lambda: ReplaySource(scene_frames[:1], loop=True))
    thread = run_in_thread(runtime)
    assert wait_for(lambda: runtime.timer.frames >= 2)
    runtime.stop()
    thread.join(20.0)
    assert not thread.is_alive()
    assert (tmp_path / "state" / "totals.json").is_file()
    from gpiozero import LED

    for pin in (17, 27, 22):  # released: claimable again
        LED(pin, pin_factory=mock_factory).close()


def test_model_resolution_order(tmp_path, bundle_dir):
    config = make_config(tmp_path)
    assert resolve_model(config, "cli/bundle") == "cli/bundle"
    assert resolve_model(config.replace("classifier", model="ini/bundle")) == "ini/bundle"
    assert resolve_model(config) is None  # nothing deployed: the bundled default
    from maskipy.edge.swap.install import install_bundle

    installed = install_bundle(bundle_dir, config.counts.state_dir, notify=False)
    current = config.counts.state_dir / "models" / "current"
    assert resolve_model(config) == current.resolve() == installed.current
    # The runtime loads the deployed models/current, not the default.
    frame = np.zeros((120, 160, 3), np.uint8)
    runtime = EdgeRuntime(config, notifier=SystemdNotifier(""), source_opener=lambda: ReplaySource([frame]))
    runtime.run(max_frames=1)
    assert runtime.bundle.directory == current.resolve()
    assert runtime.bundle.sha256 == load_bundle(bundle_dir).sha256


def test_bad_model_fails_before_anything_is_opened(tmp_path):
    from maskipy.edge.errors import ModelError

    opened = []
    with pytest.raises(ModelError, match="bundle directory not found"):
        EdgeRuntime(make_config(tmp_path), model=tmp_path / "nope", notifier=SystemdNotifier(""),
                    source_opener=lambda: opened.append(1))
    assert opened == []


def _clock(step: float):
    """A monotonic clock that advances ``step`` seconds each time it is read."""
    ticks = iter(range(10**9))
    return lambda: next(ticks) * step


def test_a_video_counts_the_same_however_fast_it_is_read(tmp_path, bundle_dir, scene_frames, make_video):
    """Tracks live in the video's own time: the ten scene photos, 1 s each with 2.5 s of empty frames
    between them (10 frames/s), count the same people whether the file is read far faster than real
    time or slower, as a camera watching that scene would."""
    blank = np.zeros((480, 640, 3), np.uint8)
    frames = [frame for photo in scene_frames for frame in [photo] * 10 + [blank] * 25]
    video = make_video(frames, name="walk.avi", size=(640, 480))
    people = []
    for step in (0.0001, 0.4):  # a file read ~1000x faster than real time, or ~4x slower
        (tmp_path / str(step)).mkdir()
        config = make_config(tmp_path / str(step))
        runtime = EdgeRuntime(config, source=str(video), model=bundle_dir, notifier=SystemdNotifier(""),
                              clock=_clock(step))
        people.append(runtime.run())
    assert people[0] == people[1]
    # Each photo's people are their own: as many as the photos show one by one, as stills.
    stills = tmp_path / "stills"
    stills.mkdir()
    import cv2

    for i, photo in enumerate(scene_frames):
        cv2.imwrite(str(stills / f"{i:02d}.png"), cv2.resize(photo, (640, 480)))
    (tmp_path / "stills-state").mkdir()
    alone = EdgeRuntime(make_config(tmp_path / "stills-state"), source=str(stills), model=bundle_dir,
                        notifier=SystemdNotifier("")).run()
    assert sum(people[0].values()) == sum(alone.values())
