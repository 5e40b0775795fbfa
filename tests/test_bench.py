"""The bench scripts run end to end with tiny counts and write JSON with the documented keys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mqtt_broker import needs_mosquitto

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A tiny Keras model with the seed's input and output shapes, and its int8 and float32 bundles."""
    pytest.importorskip("tensorflow")
    import keras
    from bench_common import CROP, LABELS

    from maskipy.converters.bundle import write_bundle
    from maskipy.converters.tflite import convert

    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(4, 8, strides=8, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    crops = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    root = tmp_path_factory.mktemp("bundles")
    int8 = write_bundle(root / "int8", convert(model, "int8", crops), list(LABELS), dict(CROP), {})
    float32 = write_bundle(root / "float32", convert(model, "float32"), list(LABELS), dict(CROP), {})
    return model, int8, float32


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_edge_pipeline_writes_stage_times_speedup_recall_and_time_to_count(tmp_path, tiny_models,
                                                                            shared_data):
    import edge_pipeline
    from bench_common import write_json

    model, int8, _ = tiny_models
    grid = {"every_n_frames=2,min_votes=2": {"detector.every_n_frames": "2", "tracking.min_votes": "2"}}
    result = edge_pipeline.run_benchmark(frames=8, scenes=1, scene_frames=2,
                                         types=["640x480_1face", "scenes"], bundle=int8, seed_model=model,
                                         variants={"detector=haar": edge_pipeline.VARIANTS["detector=haar"]},
                                         count_grid=grid, count_scenes=1, count_frames=6)
    result["bars"] = edge_pipeline.bars(result)
    result["pi_estimate"] = edge_pipeline.pi_estimate(result)
    data = read(write_json(tmp_path / "edge.json", result))
    entry = data["frame_types"]["640x480_1face"]
    for who in ("seed", "edge"):
        run = entry[who]
        assert set(run["stages_ms"]) == set(edge_pipeline.STAGES)
        # Timed, not just present: every frame has a detect time and the run a frame rate.
        assert run["stages_ms"]["detect"]["n"] == 8 and run["stages_ms"]["detect"]["median"] > 0
        assert run["fps"] > 0 and run["total_ms"]["mean"] > 0
        # The face walks in at frame 0 (first stream): on every frame, found or not.
        assert run["frames"] == 8 and run["true_faces"] == 8 and 0 <= run["recall"] <= 1
    assert entry["edge"]["inferred_frames"] == 4  # every_n_frames = 2 by default
    assert entry["speedup_vs_seed"] == round(entry["edge"]["fps"] / entry["seed"]["fps"], 2)
    haar = entry["variants"]["detector=haar"]
    assert haar["fps"] > 0 and data["runs"]["edge[detector=haar]"]["detector"] == "haar"
    assert data["runs"]["edge"]["detector"] == "yunet"
    counts = entry["edge"]["time_to_count"]
    assert counts["people"] == 1 and counts["goal_s"] == 0.5
    assert data["time_to_count"]["shipped_default"] == "every_n_frames=2,min_votes=2"
    grid_run = data["time_to_count"]["configs"]["every_n_frames=2,min_votes=2"]
    assert grid_run["frames"] == 12 and grid_run["inferred_frames"] == 6  # a one- and a four-face stream
    assert grid_run["time_to_count"]["people"] == 5
    assert data["frame_types"]["scenes"]["edge"]["recall"] is None
    assert data["settings"]["backgrounds"] == "real" and data["provenance"]["commit"] != "unknown"
    models = data["models"]
    assert set(models["detectors"]) == set(data["runs"]["edge"]["detector_models"])
    assert data["runs"]["edge[detector=haar]"]["detector_models"] == []
    assert all(len(m["sha256"]) == 64 and m["mmacs"] > 0 for m in models["detectors"].values())
    assert len(models["classifier"]["sha256"]) == 64
    assert {"speedup_ok", "recall_ok", "count_ok"} <= set(data["bars"])
    assert data["bars"]["count_people"] == 5  # judged on the grid's streams
    pi = data["pi_estimate"]
    assert pi["estimate_only"] and "pi4_int8_rate" in pi["assumptions"]
    assert pi["frame_types"]["640x480_1face"]["edge"]["pi4_fps"] > 0
    # The default (YuNet) run's detect estimate is built from the YuNet model's MAC figure: its Pi 4 ms
    # per detect call plus the rest of detect scaled by the CPU factor, not x86 ms x CPU factor alone.
    from pi_estimate import FLOAT_OVER_INT8, PI4_INT8_MMAC_PER_MS, PI_THREAD_SLOWDOWN

    yunet = models["detectors"]["yunet-n@320"]
    assert data["runs"]["edge"]["detector_models"] == ["yunet-n@320"] and yunet["mmacs"] > 0
    assert yunet["x86_invoke_ms"] > 0 and len(yunet["sha256"]) == 64
    slowdown = PI_THREAD_SLOWDOWN[yunet["threads"]]
    assert yunet["pi4_ms_estimate"] == pytest.approx(
        yunet["mmacs"] / PI4_INT8_MMAC_PER_MS * FLOAT_OVER_INT8 * slowdown, abs=0.01)
    edge_run = entry["edge"]
    share = edge_run["inferred_frames"] / edge_run["frames"]
    rest = max(0.0, edge_run["stages_ms"]["detect"]["mean"] / share - yunet["x86_invoke_ms"])
    expected = share * (yunet["pi4_ms_estimate"] + rest * pi["cpu_factor"])
    detect = pi["frame_types"]["640x480_1face"]["edge"]["pi4_ms_by_stage"]["detect"]
    assert detect == pytest.approx(expected, rel=0.01, abs=0.05)
    assert detect >= share * yunet["pi4_ms_estimate"] - 0.01


def test_time_to_count_matches_count_events_to_the_faces_that_walked_in():
    from bench_frames import Stream
    from stream_metrics import CountTally

    from maskipy.edge.tracking import CountEvent

    face_a, face_b, own = (10, 10, 50, 50), (200, 10, 50, 50), (400, 300, 60, 60)
    frames = [(b"", [face_a], [0]), (b"", [face_a], [0]), (b"", [face_a, face_b], [0, 1]),
              (b"", [face_a, face_b], [0, 1]), (b"", [face_a, face_b], [0, 1])]
    stream = Stream(frames, enters=[0, 2], ignore=[own], labels=["unmasked", "properly_masked"])
    tally = CountTally()
    tally.add_stream(stream, [(3, CountEvent(0.0, 1, "unmasked", 0.9, (12, 12, 48, 48))),
                              (4, CountEvent(0.0, 2, "unmasked", 0.9, (202, 8, 50, 52))),
                              (4, CountEvent(0.0, 3, "unmasked", 0.9, (11, 11, 50, 50))),
                              (4, CountEvent(0.0, 4, "unmasked", 0.9, own))])
    summary = tally.summary()
    # Face a: counted at frame 3, there since 0 -> 0.2 s; face b: frame 4, since 2 -> 0.133 s.
    assert sorted(tally.seconds) == [2 / 15, 3 / 15]
    assert summary["counted"] == summary["people"] == 2 and summary["within_goal_share"] == 1.0
    assert (summary["extra_counts"], summary["background_counts"], summary["spurious_counts"]) == (1, 1, 0)
    assert summary["counted_label_accuracy"] == 0.5  # face b was counted as unmasked
    late = CountTally()
    late.add_stream(stream, [])
    assert late.summary()["counted"] == 0 and late.summary()["within_goal_share"] == 0.0


def test_model_macs_counts_the_classifier_as_mobilenet_v2():
    from model_macs import model_macs, op_macs

    from maskipy.edge.bundle import DEFAULT_BUNDLE, MODEL_FILE

    assert op_macs("CONV_2D", (32, 3, 3, 3), (1, 112, 112, 32)) == 112 * 112 * 32 * 27
    assert op_macs("DEPTHWISE_CONV_2D", (1, 3, 3, 32), (1, 112, 112, 32)) == 112 * 112 * 32 * 9
    if not (DEFAULT_BUNDLE / MODEL_FILE).is_file():
        pytest.skip("no default bundle")
    # MobileNetV2-224 is ~300 M multiply-adds (Sandler et al. 2018); the shipped model runs it on
    # 160 px crops, (160/224)^2 of that in the backbone (5x5 instead of 7x7 cells at the end).
    macs = model_macs(DEFAULT_BUNDLE / MODEL_FILE)["mmacs"]
    assert 300 * (160 / 224) ** 2 * 0.95 <= macs <= 300 * (160 / 224) ** 2 * 1.05


def test_match_faces_counts_each_true_face_once():
    from edge_pipeline import match_faces

    assert match_faces([(10, 10, 50, 50)], [(12, 12, 48, 48), (14, 14, 40, 40)]) == (1, 1)
    assert match_faces([(10, 10, 50, 50)], [(300, 300, 50, 50)]) == (0, 1)


def test_classifier_writes_rows_per_runtime_and_the_speedup(tmp_path, tiny_models):
    import classifier
    from bench_common import write_json

    model, int8, float32 = tiny_models
    result = classifier.run_benchmark(runs=3, bundle=int8, float_model=str(float32), seed_model=model)
    data = read(write_json(tmp_path / "classifier.json", result))
    timed = [r for r in data["rows"] if "ms" in r]
    assert {(r["model"], r["threads"]) for r in timed if r["runtime"] == "ai-edge-litert"} >= {
        ("int8", 1), ("int8", 2), ("int8", 4), ("float32", 1), ("float32", 2), ("float32", 4)}
    assert {r.get("call") for r in timed if r["runtime"] == "keras"} == {"predict", "predict_on_batch"}
    assert all(r["ms"]["n"] == 3 for r in timed)
    assert {"keras_predict_over_int8", "keras_predict_over_int8_paired", "bar", "ok"} <= set(data["speedup"])


def test_memory_startup_measures_a_real_edge_process(tmp_path, tiny_models, scenes_dir):
    import memory_startup
    from bench_common import write_json

    result = memory_startup.run_benchmark(runs=1, bundle=tiny_models[1], source=scenes_dir, max_frames=3)
    data = read(write_json(tmp_path / "startup.json", result))
    run = data["runs"][0]
    assert run["exit_code"] == 0, run["stderr_tail"]
    assert run["peak_rss_mb"] > 0 and run["ready_s"] is not None
    assert {"peak_rss_mb", "first_decision_s", "bars"} <= set(data)


@needs_mosquitto
def test_memory_long_samples_real_gates_and_says_where_their_memory_sits(tmp_path, shared_data):
    import memory_long
    from bench_common import write_json

    result = memory_long.run_benchmark(frames=60, stages=True, work=tmp_path)
    data = read(write_json(tmp_path / "memory.json", result))
    runs = {run["variant"]: run for run in data["runs"]}
    assert set(runs) == set(memory_long.VARIANTS) and data["all_exit_zero"], data["runs"]
    for run in runs.values():
        # The gate's own peak, not this (TensorFlow-sized) process's that ru_maxrss carries over: near
        # the VmHWM /proc showed while it ran.
        assert 0 < run["peak_rss_mb"] < 1024 and run["samples"] >= 1
        assert abs(run["peak_rss_mb"] - run["sampled_hwm_mb"]) <= 5
        assert run["where_mb"]["malloc heap (main arena)"] > 0
        assert any(name.startswith("cv2") for name in run["where_mb"])
    assert runs["page+mqtt"]["threads_peak"] > runs["off"]["threads_peak"]
    # Polled while it served (a poll as the gate closes its page may fail: the run ends under it).
    assert runs["page+mqtt"]["page_requests"] >= 1 and "page_requests" not in runs["off"]
    steps = [step["step"] for step in data["stages"]]
    assert steps[0] == "python" and steps[-2:] == ["after frame 1", "after frame 300"]
    assert all(step["rss_mb"] > 0 for step in data["stages"])
    assert set(data["peak_rss_mb"]) == set(memory_long.VARIANTS) and "ok" in data["goal"]
    assert len(data["provenance"]["commit"]) >= 40


def test_status_page_compares_gates_with_the_page_off_on_watched_and_under_hostile_clients(tmp_path,
                                                                                           shared_data):
    import status_page
    from bench_common import write_json

    from maskipy.edge.bundle import DEFAULT_BUNDLE, load_bundle

    result = status_page.run_benchmark(1, frames_per_scene=15, work=tmp_path)
    data = read(write_json(tmp_path / "page.json", result))
    runs = {run["variant"]: run for run in data["runs"]}
    assert set(runs) == set(status_page.VARIANTS) and all(r["frames"] == 45 for r in runs.values())
    assert runs["page"]["page_requests"] >= 1 and runs["page"]["page_errors"] == 0
    assert runs["page+preview"]["preview_frames_encoded"] >= 1 and runs["page+preview"]["stream_kib"] > 0
    assert runs["off"]["preview_frames_encoded"] == 0 and "page_requests" not in runs["off"]
    record = data["provenance"]
    assert record["models"]["classifier"]["sha256"] == load_bundle(DEFAULT_BUNDLE).sha256
    assert len(record["commit"]) >= 40
    summary = data["summary"]
    assert summary["page"]["fps_ratio_to_off"] > 0 and summary["page"]["peak_rss_mb"] > 50
    # The gate's own peak (VmHWM), not the bench process's carried over by ru_maxrss: under 1 GB, and
    # about what /proc showed while it ran (the watch also sees the last moments after the child's read).
    assert all(r["rss_sampled_peak_mb"] - 5 <= r["peak_rss_mb"] < 1024 for r in runs.values())
    assert all(r["threads_peak"] >= 2 and r["watch_samples"] >= 1 for r in runs.values())
    slow, busy = runs["page+300slow"]["slow"], runs["page+50busy"]["busy"]
    assert slow["clients"] == 300 and slow["connected"] >= 300
    assert busy["clients"] == 50 and busy["answered"] > 0 and busy["failed"] >= 0
    assert summary["page+50busy"]["busy"]["answered"] == busy["answered"]
    for name in ("page+300slow", "page+50busy"):
        assert 0 < summary[name]["fps_ratio_round_median"] == summary[name]["fps_ratio_by_round"][0]
        assert summary[name]["cpu_ratio_to_off"] > 0
    # The front door's fixed pool: the page adds the same threads with 300 slow clients as with none.
    assert summary["page+300slow"]["threads_added_vs_off"] <= status_page.SERVER_THREADS_GOAL
    assert data["goals"]["slow_threads_ok"] is True
    assert {"fps_ratio_ok", "cpu_ratio_ok", "rss_ok", "slow_fps_ratio_ok", "busy_fps_ratio_ok"} <= set(
        data["goals"])


def test_status_page_runs_only_the_variants_asked_for(tmp_path, shared_data):
    import status_page

    result = status_page.run_benchmark(1, frames_per_scene=5, work=tmp_path, variants=["page+50busy"])
    assert [run["variant"] for run in result["runs"]] == ["off", "page", "page+50busy"]
    assert "slow_threads_ok" not in result["goals"] and "busy_fps_ratio_ok" in result["goals"]


def test_detector_recall_counts_boxes_before_and_after_the_not_face_check(tmp_path, tiny_bundle,
                                                                          shared_data):
    import detector_recall

    out = tmp_path / "detector.json"
    assert detector_recall.main(["--data", str(shared_data), "--per-class", "2", "--configs",
                                 "ssd_default", "--verify", str(tiny_bundle), "--json", str(out)]) == 0
    result = read(out)["results"]["ssd_default"]
    assert {"faces/unmasked", "real/properly_masked", "not_face/not_face", "scenes/fp_per_photo",
            "ms_per_640x480"} <= set(result)
    for key, rate in result.items():
        if key.endswith("+v"):
            # The check only ever drops boxes: nothing is found after it that was not found before.
            assert rate <= result[key[:-2]] + 1e-9, key
    assert "scenes/fp_per_photo+v" in result and "faces/improperly_masked+v" in result


def test_edge_pipeline_options_take_list_values():
    from edge_pipeline import parse_option

    _, overrides = parse_option("cascades=frontalface_default,frontalface_alt2,every_n_frames=6")
    assert overrides == {"detector.cascades": "frontalface_default,frontalface_alt2",
                         "detector.every_n_frames": "6"}
    assert parse_option("tracking.max_age=3,closeup_cascades=")[1] == {
        "tracking.max_age": "3", "detector.closeup_cascades": ""}


def test_input_size_curves_trade_false_alarms_for_improper_recall_and_find_the_bundle_point():
    from input_size import operating_curve

    labels = ["properly_masked", "improperly_masked", "unmasked", "not_face"]
    # Two properly masked faces (one leaning improper), two improperly masked (one leaning proper).
    probs = np.array([[0.9, 0.1, 0, 0], [0.6, 0.4, 0, 0], [0.3, 0.7, 0, 0], [0.7, 0.3, 0, 0]], np.float32)
    true = np.array([0, 0, 1, 1])
    result = operating_curve(probs, true, labels, np.ones(4, np.float32))
    assert result["chosen"] == {"weight": 1.0, "false_alarms": 0.0, "improper_recall": 0.5}
    # Raising the improper weight past 0.7/0.3 catches both improper faces but alarms the leaning one.
    points = {(fa, r) for _, fa, r in result["curve"]}
    assert (0.5, 1.0) in points and (0.0, 1.0) not in points
    assert result["improper_recall_at_false_alarms"]["0.015"] == 0.5
    assert all(r <= 1.0 for _, _, r in result["curve"])


def test_input_size_flip_averages_a_crop_with_its_mirror_image():
    from input_size import FlipAveraged

    class Left:
        """Scores a crop by how bright its left half is: a mirror image scores the right half."""
        decision = "kept"

        def classify(self, crops):
            crops = np.asarray(crops, np.float32)
            left = crops[..., : crops.shape[-2] // 2, :].mean(axis=(-3, -2, -1))
            return np.stack([left, 1 - left], axis=-1).reshape(-1, 2)

    crop = np.zeros((4, 4, 3), np.float32)
    crop[:, :2] = 1.0  # bright on the left only
    assert Left().classify(crop)[0, 0] == 1.0
    flipped = FlipAveraged(Left())
    np.testing.assert_allclose(flipped.classify(crop), [[0.5, 0.5]])
    assert flipped.decision == "kept"


def test_lower_face_separation_counts_only_improper_calls_on_properly_masked_faces():
    from lower_face import operating_points, separation_auc

    # Properly masked faces: one called unmasked (not what a nose crop is for, not counted), one
    # leaning improper. Improperly masked faces: one clear, one leaning proper.
    probs = np.array([[0.2, 0.0, 0.8], [0.6, 0.4, 0.0], [0.1, 0.9, 0.0], [0.7, 0.3, 0.0]], np.float32)
    truth = np.array([0, 0, 1, 1])
    points = operating_points(probs, truth)
    # At weight 1 nothing proper is called improper and one improper face is caught.
    assert points["0.015"] == 0.5
    # p(I)/(p(I)+p(P)): proper 0.0 and 0.4, improper 0.9 and 0.3: 3 of 4 pairs ranked right.
    assert points["auc"] == pytest.approx(0.75)
    assert separation_auc(probs[[1, 2]], np.array([False, True])) == 1.0


def test_lower_face_square_is_centred_where_asked():
    from lower_face import face_box, square

    image = np.zeros((140, 140, 3), np.uint8)
    image[60:80, 60:80] = 255  # a bright patch around (70, 70)
    out = square(image, 70, 70, 40, 40)
    assert out.shape == (40, 40, 3) and out[20, 20, 0] == 255 and out[2, 2, 0] == 0
    # A crop cut with 20 % margin each side: the face is the middle 1/1.4 of it.
    assert face_box((140, 140, 3)) == pytest.approx((20, 20, 100, 100))
