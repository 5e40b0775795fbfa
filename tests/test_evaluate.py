"""maskipy-eval: metrics through the edge path on folder-per-class data, JSON and PNG written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from maskipy.trainer.evaluate import main, parse_label_map


def _small_set(shared_data: Path, tmp_path: Path, per_class: int = 4) -> Path:
    root = tmp_path / "set"
    for label in ("properly_masked", "improperly_masked", "unmasked"):
        (root / label).mkdir(parents=True)
        for path in sorted((shared_data / "realworld-photos" / label).glob("*.jpg"))[:per_class]:
            shutil.copy(path, root / label / path.name)
    return root


def test_eval_writes_accuracy_macro_f1_recall_and_confusion(tiny_bundle, shared_data, tmp_path, capsys):
    data = _small_set(shared_data, tmp_path)
    out = tmp_path / "eval.json"
    assert main([str(tiny_bundle), str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 12
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["macro_f1"] <= 1.0
    assert set(result["recall"]) == {"properly_masked", "improperly_masked", "unmasked"}
    assert sum(map(sum, result["confusion"])) == 12
    assert out.with_suffix(".png").is_file()
    assert "macro-F1" in capsys.readouterr().out


def test_label_map_folds_model_classes_into_the_data_sets(tiny_bundle, shared_data, tmp_path):
    root = tmp_path / "two"
    for label, source in (("with_mask", "properly_masked"), ("without_mask", "unmasked")):
        (root / label).mkdir(parents=True)
        for path in sorted((shared_data / "realworld-photos" / source).glob("*.jpg"))[:3]:
            shutil.copy(path, root / label / path.name)
    out = tmp_path / "two.json"
    code = main([str(tiny_bundle), str(root), "--json", str(out), "--label-map",
                 "with_mask=properly_masked,improperly_masked", "without_mask=unmasked"])
    assert code == 0
    result = json.loads(out.read_text())
    predicted = {label for label in result["labels"]} - {"with_mask", "without_mask"}
    assert predicted <= {"not_face"}, "every face class must fold into the data set's labels"


def test_detect_mode_reports_how_often_a_face_was_found(tiny_bundle, scenes_dir, tmp_path):
    out = tmp_path / "scenes.json"
    assert main([str(tiny_bundle), str(scenes_dir), "--detect", "--json", str(out)]) == 0
    detection = json.loads(out.read_text())["detection"]
    assert detection["images"] == 10 and 0 < detection["found"] <= 10


def test_bad_arguments_are_errors_not_tracebacks(tiny_bundle, tmp_path, capsys):
    assert main([str(tiny_bundle), str(tmp_path / "missing")]) == 1
    assert "maskipy-eval: error:" in capsys.readouterr().err
    with pytest.raises(Exception, match="DATASET_LABEL=MODEL_LABEL"):
        parse_label_map(["with_mask"])


def test_false_alarms_are_counted_by_face_width(shared_data, tmp_path, capsys):
    """The false-alarm rate is properly masked faces the model calls improperly masked, per size bin."""
    from maskipy.edge.bundle import DEFAULT_BUNDLE
    from maskipy.trainer.evaluate import Evaluator

    data = _small_set(shared_data, tmp_path, per_class=12)
    out = tmp_path / "eval.json"
    assert main([str(DEFAULT_BUNDLE), str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    # Counted again here, one image at a time, through the same edge path.
    evaluator = Evaluator(str(DEFAULT_BUNDLE), None, crop_margin=0.2)
    answers = [evaluator.predict(p) for p in sorted((data / "properly_masked").iterdir())]
    alarms = sum(a.label == "improperly_masked" for a in answers)
    assert result["false_alarms"] == alarms
    assert result["false_alarm_rate"] == round(alarms / 12, 4)
    assert sum(row["properly_masked"] for row in result["by_size"].values()) == 12
    assert sum(row["false_alarms"] for row in result["by_size"].values()) == alarms
    assert set(result["by_size"]) == {"<48", "48-80", "80-130", ">=130"}
    assert 0.0 <= result["ece"] <= 1.0
    assert "false alarms (properly masked called improperly masked)" in capsys.readouterr().out


def test_each_evaluation_counts_only_its_own_detections(default_bundle, shared_data):
    """bench/accuracy.py evaluates several sets with one Evaluator: the face-found rate of the second
    set must not include the first set's images."""
    from maskipy.edge.config import DetectorConfig
    from maskipy.trainer.evaluate import Evaluator, evaluate

    masked = sorted((shared_data / "faces" / "properly_masked").glob("*"))[:3]
    faces = [(p, "properly_masked") for p in masked]
    scenes = [(p, "unmasked") for p in sorted((shared_data / "scenes" / "without_mask").glob("*"))]
    evaluator = Evaluator(str(default_bundle), DetectorConfig(), crop_margin=0.2)
    first = evaluate(evaluator, faces, {})["detection"]
    second = evaluate(evaluator, scenes, {})["detection"]
    assert first["images"] == len(faces) and second["images"] == len(scenes)
    alone = evaluate(Evaluator(str(default_bundle), DetectorConfig(), crop_margin=0.2), scenes, {})
    assert second == alone["detection"]
