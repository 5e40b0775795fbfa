"""Converters: the int8 bundle's contents, parity enforcement, and the edge refusing bad bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from maskipy.converters.parity import enforce
from maskipy.edge.bundle import META_FILE, MODEL_FILE, load_bundle, sha256_file
from maskipy.edge.classifier import build_classifier
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.config import ClassifierConfig
from maskipy.edge.errors import ModelError


def test_bundle_is_full_integer_int8_with_its_contract(tiny_bundle: Path):
    meta = json.loads((tiny_bundle / META_FILE).read_text())
    assert meta["format"] == "maskipy-bundle/1"
    assert meta["quantization"] == "int8"
    assert meta["calibration"]["method"] == "percentile" and meta["calibration"]["samples"] > 0
    assert meta["input"]["dtype"] == "int8" and meta["output"]["dtype"] == "int8"
    assert meta["input"]["shape"] == [1, 64, 64, 3]
    # MobileNetV2 scaling maps pixel p to p/127.5-1: one int8 step per pixel value.
    assert meta["input"]["scale"] == pytest.approx(1 / 127.5, rel=0.02)
    assert meta["model"]["sha256"] == sha256_file(tiny_bundle / MODEL_FILE)
    assert meta["model"]["bytes"] == (tiny_bundle / MODEL_FILE).stat().st_size
    assert meta["labels"] == ["properly_masked", "improperly_masked", "unmasked", "not_face"]
    assert meta["preprocess"]["crop"]["size"] == 64
    assert len(meta["source"]["keras_sha256"]) == 64
    assert {"agreement", "float_accuracy", "quantized_accuracy", "per_class",
            "max_probability_difference"} <= set(meta["parity"])
    assert meta["sizes"]["tflite_bytes"] < meta["sizes"]["float32_tflite_bytes"]
    assert "non-commercial" in meta["licence"]


# The golden answers were written by ai-edge-litert at conversion; TensorFlow's own TFLite build reads
# them back here. Two int8 output steps (scale 1/256) cover the kernels' different rounding.
GOLDEN_TOLERANCE = 2 / 256


def test_golden_output_is_reproduced_by_another_runtime(tiny_bundle: Path):
    """model.json's golden numbers against TensorFlow's interpreter (not the one that wrote them)."""
    import tensorflow as tf

    from maskipy.edge.preprocess import to_input

    bundle = load_bundle(tiny_bundle)
    golden = bundle.metadata["golden"]
    crop = np.random.default_rng(golden["seed"]).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    interpreter = tf.lite.Interpreter(model_path=str(bundle.model_path), num_threads=1)
    interpreter.allocate_tensors()
    source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(source["index"], to_input(crop, source["dtype"], *source["quantization"]))
    interpreter.invoke()
    scale, zero = sink["quantization"]
    probs = (interpreter.get_tensor(sink["index"]).astype(np.float32) - zero) * scale
    np.testing.assert_allclose(probs, golden["probabilities"], atol=GOLDEN_TOLERANCE)
    assert probs.sum() == pytest.approx(1.0, abs=0.02)


def test_one_golden_crop_recipe_for_the_converter_and_the_deploy():
    """Bundles already out there hold answers to these exact pixels: the recipe must never drift."""
    from maskipy.converters import bundle as converter_bundle
    from maskipy.edge.swap import validate

    assert converter_bundle.golden_crop is validate.golden_crop
    crop = validate.golden_crop(64, seed=3)
    assert crop.shape == (1, 64, 64, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(
        crop, np.random.default_rng(3).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8))


def test_stored_parity_is_what_a_new_measurement_gives(tiny_bundle: Path, tiny_training: Path):
    """model.json's parity block, measured again from the files: the held-out crops, the saved Keras
    model and the bundle in a fresh interpreter."""
    import keras
    from conftest import SHARED, tiny_train_config

    from maskipy.converters.parity import check_parity
    from maskipy.edge.config import DetectorConfig
    from maskipy.trainer.train import prepare_crops

    _, parts, _ = prepare_crops(tiny_train_config(SHARED, tiny_bundle.parent), DetectorConfig())
    test = parts["test"]
    model = keras.models.load_model(tiny_training / "model.keras", compile=False)
    measured = check_parity(model, tiny_bundle, test.crops, list(test.labels), sources=list(test.sources))
    stored = load_bundle(tiny_bundle).metadata["parity"]
    assert measured["n"] == stored["n"] > 0
    # The converter used 2 threads as check_parity does: the same numbers, to the 4 decimals stored.
    for key in ("agreement", "float_accuracy", "quantized_accuracy", "max_probability_difference"):
        assert measured[key] == pytest.approx(stored[key], abs=1e-4), key
    assert measured["per_class"] == stored["per_class"]


def test_the_model_gives_different_answers_for_different_faces(tiny_bundle: Path, shared_data):
    from maskipy.edge.preprocess import crop_face, read_image, whole_image_box

    bundle = load_bundle(tiny_bundle)
    classifier = TFLiteClassifier(bundle)
    paths = [sorted((shared_data / "realworld-photos" / c).glob("*.jpg"))[0]
             for c in ("properly_masked", "unmasked", "improperly_masked")]
    crops = np.stack([crop_face(img, whole_image_box(img.shape, 0.2), bundle.crop_spec)
                      for img in (read_image(str(p)) for p in paths)])
    probs = classifier.classify(crops)
    assert np.ptp(probs, axis=0).max() > 0.01, "a trained model must not answer the same for all"


def test_parity_thresholds_fail_with_a_clear_message():
    result = {"agreement": 0.97, "accuracy_delta": -0.02}
    with pytest.raises(ModelError, match=r"agreement 0\.9700 is below \[convert\] min_agreement = 0\.995"):
        enforce(result, 0.995, 0.005)
    with pytest.raises(ModelError, match=r"accuracy dropped 0\.0200"):
        enforce({"agreement": 1.0, "accuracy_delta": -0.02}, 0.9, 0.005)
    enforce({"agreement": 0.999, "accuracy_delta": -0.001}, 0.995, 0.005)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_edge_refuses_a_bundle_whose_sha256_does_not_match(tiny_bundle, tmp_path):
    copy = _copy(tiny_bundle, tmp_path)
    data = bytearray((copy / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"sha256 .* does not match model\.json"):
        load_bundle(copy)


def test_edge_refuses_labels_the_config_does_not_expect(tiny_bundle):
    config = ClassifierConfig(labels=("with_mask", "without_mask"))
    with pytest.raises(ModelError, match=r"do not match \[classifier\] labels = with_mask, without_mask"):
        build_classifier(config, load_bundle(tiny_bundle))


def test_edge_refuses_an_input_size_that_does_not_match_the_crop(tiny_bundle, tmp_path):
    copy = _copy(tiny_bundle, tmp_path)
    meta = json.loads((copy / META_FILE).read_text())
    meta["preprocess"]["crop"]["size"] = 224
    (copy / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"model input \(64, 64, 3\) does not match the bundle's crop size"):
        TFLiteClassifier(load_bundle(copy))


def test_edge_refuses_a_missing_or_broken_bundle(tmp_path):
    with pytest.raises(ModelError, match="bundle directory not found"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / MODEL_FILE).write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"model\.json: missing from the bundle"):
        load_bundle(tmp_path)
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_bundle(tmp_path)


# float32 TFLite is the Keras graph in another runtime; uint8 is one quantization step per tensor away.
FLOAT32_TOLERANCE = 1e-4
UINT8_MEAN_TOLERANCE = 0.05


def test_uint8_and_float32_variants_convert_and_run(tiny_bundle, shared_data):
    import keras

    from maskipy.converters.parity import float_answers
    from maskipy.converters.tflite import convert
    from maskipy.edge.classifier.interpreter import load_interpreter_class
    from maskipy.edge.preprocess import to_input

    model = keras.models.load_model(tiny_bundle.parent / "model" / "model.keras", compile=False)
    crops = np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    expected = float_answers(model, crops)
    interpreter_class, _ = load_interpreter_class()
    for mode, dtype, tolerance in (("uint8", np.uint8, UINT8_MEAN_TOLERANCE),
                                   ("float32", np.float32, FLOAT32_TOLERANCE)):
        interpreter = interpreter_class(model_content=convert(model, mode, crops))
        interpreter.allocate_tensors()
        source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        assert source["dtype"] == dtype
        answers = []
        for crop in crops:
            interpreter.set_tensor(source["index"], to_input(crop[None], dtype, *source["quantization"]))
            interpreter.invoke()
            raw = interpreter.get_tensor(sink["index"]).astype(np.float32)
            scale, zero = sink["quantization"]
            answers.append((raw - zero) * scale if scale else raw)
        answers = np.concatenate(answers)
        assert np.abs(answers - expected).mean() <= tolerance, (mode, answers, expected)


def test_percentile_range_clips_rare_outliers_and_keeps_zero():
    from maskipy.converters.calibrate import percentile_range

    counts = np.zeros(1000)
    counts[400:600] = 1000  # the bulk of the values, around zero on a -10..10 axis
    counts[999] = 1  # one outlier at the top of the observed range
    low, high = percentile_range(counts, -10.0, 10.0, 99.99)
    assert low <= 0.0 <= high
    assert high < 3.0 and low > -3.0, "one outlier in 200,001 values must not set the range"
    assert percentile_range(counts, -10.0, 10.0, 100.0) == (-10.0, 10.0)
    relu = np.zeros(1000)
    relu[:10] = 5
    # A ReLU output starts at zero: its lower end stays exactly there.
    assert percentile_range(relu, 0.0, 6.0, 99.0)[0] == 0.0


def test_percentile_calibration_at_100_is_the_converters_own_quantization(tiny_bundle):
    """Our calibrate-then-quantize path adds nothing but the clipping: at 100 % it is plain min/max."""
    import keras

    from maskipy.converters.tflite import convert

    model = keras.models.load_model(tiny_bundle.parent / "model" / "model.keras", compile=False)
    crops = np.random.default_rng(2).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    minmax = _scales_and_outputs(convert(model, "int8", crops, "minmax"), crops)
    same = _scales_and_outputs(convert(model, "int8", crops, "percentile", 100.0), crops)
    assert same[0] == minmax[0]
    np.testing.assert_array_equal(same[1], minmax[1])
    clipped = _scales_and_outputs(convert(model, "int8", crops, "percentile", 99.0), crops)
    narrower = [name for name, scale in clipped[0].items() if scale < minmax[0].get(name, 0) * 0.999]
    assert narrower, "clipping to the 99th percentile must shrink some activation ranges"


def _scales_and_outputs(flatbuffer: bytes, crops: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    from maskipy.edge.classifier.interpreter import load_interpreter_class
    from maskipy.edge.preprocess import to_input

    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_content=flatbuffer)
    interpreter.allocate_tensors()
    scales = {d["name"]: float(d["quantization"][0]) for d in interpreter.get_tensor_details()
              if d["dtype"] == np.int8 and d["quantization"][0]}
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for crop in crops:
        interpreter.set_tensor(inp["index"], to_input(crop[None], inp["dtype"], *inp["quantization"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).copy())
    return scales, np.concatenate(outputs)
