"""The bundle's decision rule: temperature calibration, the weighted choice, and how it is fitted."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from maskipy.converters.decision import fit_decision, fit_temperature
from maskipy.edge.bundle import DEFAULT_BUNDLE, load_bundle
from maskipy.edge.classifier.decision import DecisionRule, expected_calibration_error
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.errors import ModelError
from maskipy.edge.preprocess import crop_face, read_image, whole_image_box

LABELS = ("properly_masked", "improperly_masked", "unmasked")


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n: int = 4000, temperature: float = 2.5, seed: int = 0):
    """Answers whose true labels follow softmax(logits / temperature) but are stated as softmax(logits)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3.0, (n, 3))
    truth = np.array([rng.choice(3, p=p) for p in _softmax(logits / temperature)])
    return _softmax(logits), truth


def test_a_bundle_without_a_decision_keeps_softmax_and_argmax():
    rule = DecisionRule.from_metadata({}, LABELS)
    probs = np.array([[0.2, 0.5, 0.3]], np.float32)
    assert rule.calibrate(probs) is probs and rule.choose(probs).tolist() == [1]


def test_temperature_softens_without_changing_the_most_probable_label():
    rule = DecisionRule.from_metadata({"decision": {"temperature": 2.0}}, LABELS)
    probs = np.array([[0.9, 0.08, 0.02]], np.float32)
    calibrated = rule.calibrate(probs)
    assert calibrated[0, 0] < 0.9 and calibrated.argmax() == 0
    np.testing.assert_allclose(calibrated.sum(), 1.0, rtol=1e-6)


def test_weights_move_the_choice_away_from_argmax():
    rule = DecisionRule.from_metadata({"decision": {"weights": {"improperly_masked": 0.5}}}, LABELS)
    assert rule.choose(np.array([[0.45, 0.55, 0.0]], np.float32)).tolist() == [0]


@pytest.mark.parametrize("decision", [{"temperature": float("nan")}, {"temperature": 0},
                                      {"weights": {"hat": 2.0}}, {"weights": {"unmasked": -1}}, "yes"])
def test_an_invalid_decision_is_refused_with_the_fix(decision):
    with pytest.raises(ModelError, match="re-run maskipy-convert"):
        DecisionRule.from_metadata({"decision": decision}, LABELS)


def test_fitted_temperature_recovers_an_overconfident_model_and_lowers_ece():
    probs, truth = _overconfident()
    temperature = fit_temperature(probs, truth)
    assert 2.0 < temperature < 3.1
    calibrated = DecisionRule(temperature, (1.0,) * 3).calibrate(probs)
    assert expected_calibration_error(calibrated, truth) < 0.5 * expected_calibration_error(probs, truth)


def test_a_costly_false_alarm_lowers_the_improper_weight_and_the_false_alarms():
    probs, truth = _overconfident(seed=1)
    labels = [LABELS[i] for i in truth]
    cheap = fit_decision(probs, labels, LABELS, false_alarm_cost=1.0, missed_improper_cost=1.0)
    costly = fit_decision(probs, labels, LABELS, false_alarm_cost=5.0, missed_improper_cost=1.0)
    assert costly["weights"]["improperly_masked"] < cheap["weights"]["improperly_masked"]
    v = costly["validation"]
    assert v["chosen"]["false_alarm_rate"] < v["argmax"]["false_alarm_rate"]
    assert v["ece_after"] < v["ece_before"]


def test_the_edge_classifier_applies_the_bundles_decision(shared_data, tmp_path):
    """Through the real interpreter: a bundle whose decision favours improperly_masked says so."""
    image = read_image(str(sorted((shared_data / "realworld-photos" / "unmasked").glob("*.jpg"))[0]))
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle_dir)
    meta = json.loads((bundle_dir / "model.json").read_text())
    meta.pop("decision", None)
    (bundle_dir / "model.json").write_text(json.dumps(meta))
    plain = TFLiteClassifier(load_bundle(bundle_dir), num_threads=1)
    crop = crop_face(image, whole_image_box(image.shape, 0.2), plain.bundle.crop_spec)
    raw = plain.classify(crop)
    assert plain.labels[int(plain.choose(raw)[0])] == "unmasked"
    meta["decision"] = {"temperature": 3.0, "weights": {"improperly_masked": 1e6}}
    (bundle_dir / "model.json").write_text(json.dumps(meta))
    tuned = TFLiteClassifier(load_bundle(bundle_dir), num_threads=1)
    calibrated = tuned.classify(crop)
    assert calibrated.max() < (raw / raw.sum()).max()
    assert tuned.labels[int(tuned.choose(calibrated)[0])] == "improperly_masked"
