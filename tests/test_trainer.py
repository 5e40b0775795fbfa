"""The trainer: grouped splits, corrupt images, edge-identical crops, and a small real training run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, tiny_train_config

from maskipy.edge.config import DetectorConfig
from maskipy.edge.detectors import build_detector
from maskipy.edge.errors import ConfigError
from maskipy.edge.geometry import iou
from maskipy.edge.preprocess import CropSpec, crop_face, read_image, whole_image_box
from maskipy.trainer.config import load_train_config
from maskipy.trainer.crops import build_crops, fallback_rates
from maskipy.trainer.data import Sample, grouped_split, load_samples


def test_identity_never_lands_on_two_sides_of_the_split(shared_data, tmp_path):
    config = tiny_train_config(SHARED, tmp_path, sources=("faces", "realworld-photos"),
                               train_only_sources=(), max_per_source_label=10**6)
    samples = load_samples(config)
    split = grouped_split(samples, config)
    sides = {name: {s.group for s in items} for name, items in split.items()}
    assert not sides["train"] & sides["test"]
    assert not sides["train"] & sides["val"]
    assert not sides["val"] & sides["test"]
    # The same FFHQ face appears masked correctly and incorrectly: both must share one side.
    ffhq = [s for s in samples if s.group.startswith("ffhq-")]
    twins = {g for g in {s.group for s in ffhq} if len({s.label for s in ffhq if s.group == g}) > 1}
    assert twins, "expected FFHQ faces in two classes in the shared data"
    for name, items in split.items():
        groups = {s.group for s in items}
        assert all(g in groups for g in twins if g in sides[name])
    assert all(len(items) > 0 for items in split.values())


def test_split_is_reproducible_and_moves_with_the_seed(shared_data, tmp_path):
    config = tiny_train_config(SHARED, tmp_path, sources=("realworld-photos",), train_only_sources=())
    samples = load_samples(config)
    first = grouped_split(samples, config)
    again = grouped_split(samples, config)
    other = grouped_split(samples, dataclasses.replace(config, seed=7))
    assert [s.path for s in first["test"]] == [s.path for s in again["test"]]
    assert [s.path for s in first["test"]] != [s.path for s in other["test"]]


def test_corrupt_images_are_skipped_and_reported(shared_data, tmp_path, caplog):
    good = sorted((shared_data / "realworld-photos" / "unmasked").glob("*.jpg"))[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 this is not a jpeg")
    samples = [Sample(p, "unmasked", p.stem, "realworld-photos", 0.2) for p in good]
    samples.append(Sample(broken, "unmasked", "broken", "realworld-photos", 0.2))
    crops = build_crops(samples, DetectorConfig(), CropSpec(size=64), tmp_path / "cache")
    assert len(crops.labels) == 3
    assert crops.skipped == [str(broken)]
    assert "skipped 1 unreadable images" in caplog.text and "broken.jpg" in caplog.text


def test_trainer_crops_are_byte_identical_to_the_edge(shared_data, tmp_path):
    spec = CropSpec(margin=0.2, size=96)
    detector_config = DetectorConfig(min_neighbors=3, min_face=24)
    faces = sorted((shared_data / "faces" / "unmasked").glob("*.jpg"))[:4]
    crop_files = sorted((shared_data / "realworld-photos" / "properly_masked").glob("*.jpg"))[:2]
    samples = [Sample(p, "unmasked", p.stem, "faces") for p in faces]
    samples += [Sample(p, "properly_masked", p.stem, "realworld-photos", 0.2) for p in crop_files]
    made = build_crops(samples, detector_config, spec, tmp_path / "cache", mine_negatives=False)
    detector = build_detector(detector_config)
    for i, sample in enumerate(samples):
        image = read_image(str(sample.path))
        if sample.margin is None:
            found = detector.detect(image)
            assert found, f"expected a face in {sample.path}"
            box = max(found, key=lambda d: d.box[2]).box
        else:
            box = whole_image_box(image.shape, sample.margin)
        assert np.array_equal(made.crops[i], crop_face(image, box, spec)), sample.path
    # Second run: same crops from the cache, no detection.
    again = build_crops(samples, detector_config, spec, tmp_path / "cache", mine_negatives=False)
    assert np.array_equal(np.asarray(again.crops), np.asarray(made.crops))
    assert fallback_rates(made) == {"unmasked": 0.0}


def test_detect_precropped_frames_real_photos_with_the_detectors_box(shared_data, tmp_path):
    """With detect_precropped, a real-photo crop is cut around the detector's box, as the edge cuts
    it, not around the annotated box; where no detected box overlaps, the annotated box stays."""
    spec = CropSpec(margin=0.2, size=96)
    detector_config = DetectorConfig()
    paths = sorted((shared_data / "realworld-photos" / "properly_masked").glob("*.jpg"))[:6]
    samples = [Sample(p, "properly_masked", p.stem, "realworld-photos", 0.2) for p in paths]
    plain = build_crops(samples, detector_config, spec, tmp_path / "cache", mine_negatives=False)
    framed = build_crops(samples, detector_config, spec, tmp_path / "cache", mine_negatives=False,
                         detect_precropped=("realworld-photos",))
    assert set(plain.how) == {"precropped"}
    assert "reframed" in framed.how
    detector = build_detector(detector_config)
    for i, sample in enumerate(samples):
        image = read_image(str(sample.path))
        annotated = whole_image_box(image.shape, 0.2)
        if framed.how[i] == "reframed":
            box = max((d.box for d in detector.detect(image) if iou(d.box, annotated) >= 0.3),
                      key=lambda b: iou(b, annotated))
        else:
            box = annotated
        assert np.array_equal(framed.crops[i], crop_face(image, box, spec)), sample.path


def test_a_small_training_run_writes_model_metadata_and_report(tiny_training: Path):
    meta = json.loads((tiny_training / "metadata.json").read_text())
    for name in ("model.keras", "metadata.json", "curves.png", "confusion-all.png"):
        assert (tiny_training / name).is_file(), name
    assert meta["labels"] == ["properly_masked", "improperly_masked", "unmasked", "not_face"]
    assert meta["preprocess"]["crop"] == {"margin": 0.2, "size": 64, "interpolation": "auto",
                                          "colour_order": "rgb"}
    assert set(meta["data"]["splits"]) == {"train", "val", "test"}
    assert meta["test"]["all"]["n"] == sum(meta["data"]["splits"]["test"].values())
    assert len(meta["history"]["loss"]) >= 1
    assert {"detect_and_crop_s", "features_s", "head_s"} <= set(meta["timings"])


def test_bad_train_config_names_key_and_fix(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[train]\nlabel_weights = improper:2\n")
    with pytest.raises(ConfigError, match=r"label_weights: improper is not one of labels"):
        load_train_config(path)
    path.write_text("[train]\nepochs = many\n")
    with pytest.raises(ConfigError, match=r"\[train\] epochs = many: not valid; use a whole number"):
        load_train_config(path)
    path.write_text("[train]\nweights = /nowhere/weights.h5\n")
    config, _ = load_train_config(path)
    from maskipy.trainer.model import backbone_weights

    with pytest.raises(ConfigError, match="file not found; use imagenet, none"):
        backbone_weights(config.weights)


def test_oversample_adds_augmented_views_of_one_real_class_only(tmp_path):
    import numpy as np

    from maskipy.trainer.crops import CropSet
    from maskipy.trainer.train import _targets, training_inputs

    crops = np.zeros((4, 8, 8, 3), np.uint8)
    train = CropSet(crops, ["improperly_masked", "unmasked", "improperly_masked", "improperly_masked"],
                    ["a", "b", "c", "d"], ["realworld-photos", "realworld-photos", "faces",
                                           "realworld-photos"], ["precropped"] * 4, ["p"] * 4, [])
    empty = train.select(np.zeros(4, bool))
    parts = {"train": train, "val": empty, "test": empty}
    config = tiny_train_config(SHARED, tmp_path, views=1, synth_masks=False,
                               oversample=("realworld-photos/improperly_masked:3",))
    inputs = training_inputs(parts, config, DetectorConfig())
    extra = inputs[1]
    assert extra.labels == ["improperly_masked", "improperly_masked"] and extra.copies == 3
    targets = _targets(inputs, parts, config.labels)["train"]
    assert len(targets) == 4 * 2 + 2 * 3


def test_training_lets_pixels_go_once_they_are_features(tmp_path):
    """Crops are the bulk of training memory: the split keeps one copy, the released splits and
    inputs none, and labels, identities and counts survive (the model's metadata needs them)."""
    from maskipy.trainer.crops import CropSet
    from maskipy.trainer.train import _targets, _without_pixels, training_inputs

    crops = np.arange(4 * 8 * 8 * 3, dtype=np.uint8).reshape(4, 8, 8, 3)
    whole = CropSet(crops, ["unmasked", "improperly_masked", "unmasked", "properly_masked"],
                    ["a", "b", "c", "d"], ["realworld-photos"] * 4, ["precropped"] * 4, ["p"] * 4, ["x.jpg"])
    bare = whole.without_pixels()
    assert bare.crops.shape == (0, 8, 8, 3) and bare.crops.dtype == np.uint8 and crops.shape == (4, 8, 8, 3)
    assert (bare.labels, bare.groups, bare.skipped) == (whole.labels, whole.groups, whole.skipped)
    parts = {"train": whole, "val": whole.select(np.zeros(4, bool)), "test": whole.select(np.zeros(4, bool))}
    config = tiny_train_config(SHARED, tmp_path, views=1, synth_masks=False,
                               oversample=("realworld-photos/improperly_masked:2",))
    inputs = training_inputs(parts, config, DetectorConfig())
    targets = _targets(inputs, parts, config.labels)
    released_parts, released_inputs = _without_pixels(parts, inputs)
    assert all(len(p.crops) == 0 for p in released_parts.values())
    assert all(len(i.crops) == 0 for i in released_inputs)
    again = _targets(released_inputs, released_parts, config.labels)
    assert all(np.array_equal(targets[k], again[k]) for k in targets)
