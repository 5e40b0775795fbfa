"""maskipy-convert end to end, as `make default-model` calls it: an INI with [train] and [convert], the
saved Keras model of the tiny training run, and a bundle the edge then loads and runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import SHARED, TINY_LABELS

from maskipy.converters.cli import main
from maskipy.edge.bundle import load_bundle
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.swap.validate import validate_bundle


def tiny_ini(tmp_path: Path, training: Path, output: Path, min_agreement: float) -> Path:
    """The INI form of conftest.tiny_train_config (the same crops, cached beside the training run)."""
    weights = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    path = tmp_path / "tiny.ini"
    path.write_text(f"""[train]
data_dir = {SHARED / "data"}
manifest = {SHARED / "data" / "manifest.csv"}
sources = realworld-photos, realworld-video
train_only_sources = realworld-video
labels = {", ".join(TINY_LABELS)}
max_per_source_label = 30
input_size = 64
weights = {weights}
views = 1
epochs = 15
batch_size = 32
val_fraction = 0.2
test_fraction = 0.2
output_dir = {training}
cache_dir = {training.parent / "cache"}

[convert]
representative_samples = 40
min_agreement = {min_agreement}
max_accuracy_drop = 1.0
output_dir = {output}
""")
    return path


def test_maskipy_convert_writes_a_bundle_the_edge_runs(tiny_training: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "bundle"
    assert main(["--config", str(tiny_ini(tmp_path, tiny_training, output, 0.0))]) == 0
    out = capsys.readouterr().out
    assert f"bundle: {output}" in out and "agreement" in out
    bundle = load_bundle(output)
    assert bundle.labels == TINY_LABELS and bundle.metadata["quantization"] == "int8"
    validation = validate_bundle(output, labels=TINY_LABELS[:3])  # what a deploy checks on the Pi
    assert validation.golden_diff is not None
    probs = TFLiteClassifier(bundle).classify(np.zeros((2, 64, 64, 3), np.uint8))
    assert probs.shape == (2, 4) and np.allclose(probs.sum(1), 1.0, atol=0.02)


def test_a_failed_conversion_leaves_the_old_bundle(tiny_training: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "bundle"
    output.mkdir()
    (output / "keep.txt").write_text("the previous bundle")
    config = tiny_ini(tmp_path, tiny_training, output, 0.0)
    assert main(["--config", str(config), "--model", str(tmp_path / "absent.keras")]) == 1
    err = capsys.readouterr().err
    assert f"maskipy-convert: error: {tmp_path / 'absent.keras'}: Keras model not found" in err
    assert "Traceback" not in err and (output / "keep.txt").read_text() == "the previous bundle"
