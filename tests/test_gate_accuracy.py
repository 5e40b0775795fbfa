"""bench/gate_accuracy.py: the matcher on hand-made boxes, and a quick run on the real model and data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))


@pytest.mark.parametrize(("width", "matched"), [(29, False), (30, True), (31, True)])
def test_match_needs_iou_of_at_least_0_3(width, matched):
    from gate_accuracy import match_boxes

    # A box sharing the face's top-left corner and height: IoU = width / 100.
    owner, unmatched = match_boxes([(10, 20, 100, 100)], [(10, 20, width, 100)], [0.9])
    assert owner == ([0] if matched else [None])
    assert unmatched == ([] if matched else [0])


def test_match_is_one_to_one_strongest_box_first():
    from gate_accuracy import match_boxes

    faces = [(0, 0, 100, 100), (60, 0, 100, 100)]
    # Box 1 (stronger) overlaps face 1 most (IoU 0.82) and face 0 less; box 0 fits face 0 exactly.
    boxes = [(0, 0, 100, 100), (50, 0, 100, 100)]
    owner, unmatched = match_boxes(faces, boxes, [0.5, 0.9])
    assert owner == [0, 1] and unmatched == []
    # Two boxes on one face: the stronger one takes it, the other is left over (a false box).
    owner, unmatched = match_boxes([(0, 0, 100, 100)], [(0, 0, 100, 100), (2, 2, 100, 100)], [0.4, 0.8])
    assert owner == [1] and unmatched == [0]
    # A box is matched to the face it overlaps most, not the first free one.
    owner, _ = match_boxes([(0, 0, 100, 100), (40, 0, 100, 100)], [(38, 0, 100, 100)], [0.9])
    assert owner == [None, 0]


def test_width_bins():
    from gate_accuracy import in_width, width_bin

    assert [width_bin(w) for w in (47, 48, 79, 80, 129, 130)] == ["<48", "48-80", "48-80", "80-130",
                                                                  "80-130", ">=130"]
    assert in_width(48, ">=48") and not in_width(47, ">=48") and in_width(3, "all")


def test_quick_run_writes_consistent_counts(tmp_path, shared_data):
    import gate_accuracy
    from gate_accuracy import CLASSES, QUICK_WALK, WIDTHS

    out = tmp_path / "gate.json"
    assert gate_accuracy.main(["--quick", "--data", str(shared_data), "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["command"].startswith("python bench/gate_accuracy.py --quick")
    record = data["provenance"]
    assert record["commit"] and len(record["models"]["classifier"]["sha256"]) == 64
    assert any(k.startswith("detector:yunet") for k in record["models"])
    assert data["config"]["detector"]["type"] == "yunet" and data["quick"] is True

    static = data["static"]
    assert static["photos"] == data["photos"] == gate_accuracy.QUICK_PHOTOS
    assert static["faces"] == data["faces"] == static["rows"]["all/all"]["n"] > 0
    for group in (*CLASSES, "all"):
        bins = [static["rows"][f"{group}/{w}"] for w in WIDTHS[:4]]
        total = static["rows"][f"{group}/all"]
        for key in ("n", "detected", "found", "right"):
            assert sum(b[key] for b in bins) == total[key], (group, key)
        for width in WIDTHS:
            r = static["rows"][f"{group}/{width}"]
            assert r["right"] <= r["found"] <= r["detected"] <= r["n"], (group, width, r)
    assert sum(static["rows"][f"{c}/all"]["n"] for c in CLASSES) == static["faces"]
    # Boxes kept after the not_face check are either on a face or unmatched.
    unmatched = static["false_alarms"]["unmatched"]["boxes"]
    assert static["kept_boxes"] == static["rows"]["all/all"]["found"] + unmatched
    for width in WIDTHS:
        matrix = static["confusion"][width]
        for c in CLASSES:
            assert sum(matrix[c].values()) == static["rows"][f"{c}/{width}"]["found"]
            assert matrix[c][c] == static["rows"][f"{c}/{width}"]["right"]
    proper = static["false_alarms"]["properly_masked/all"]
    matrix = static["confusion"]["all"]["properly_masked"]
    assert proper["alerts"] == matrix["improperly_masked"] + matrix["unmasked"]
    # The gate finds most big faces in these photos: a broken matcher or crop would not.
    assert static["rows"]["all/>=48"]["found"] >= 0.6 * static["rows"]["all/>=48"]["n"]

    walk = data["walk"]
    assert walk["asked_per_class"] == QUICK_WALK and len(walk["people"]) == 3 * QUICK_WALK
    for c in CLASSES:
        row = walk["rows"][c]
        assert row["n"] == QUICK_WALK
        assert sum(row["counted_as"].values()) + row["not_counted"] == row["n"]
        assert row["right"] == row["counted_as"][c]
    counted = [p for p in walk["people"] if p["counted_as"] is not None]
    assert counted, "nobody walking up to the gate was counted"
    assert all(0 <= p["count_frame"] < walk["frames_per_walk"] for p in counted)


def test_vote_rules_replay_follows_the_tracker_and_waits_when_unsure():
    from vote_rules import Rule, replay

    labels = ("properly_masked", "improperly_masked", "unmasked", "not_face")
    weights = np.ones(4, np.float32)
    settings = {"reject": "not_face", "min_confidence": 0.0, "vote_frames": 5}
    proper, improper = np.array([0.8, 0.2, 0, 0]), np.array([0.1, 0.9, 0, 0])
    close, not_face = np.array([0.45, 0.55, 0, 0]), np.array([0, 0, 0, 1.0])
    # Majority: two improper votes of three settle it; a not_face frame is no vote.
    sequence = [improper, not_face, proper, improper]
    assert replay(Rule("majority", 1, 2), sequence, weights, labels, **settings) == ("improperly_masked", 3)
    # Soft: the mean of the first two votes (0.625 vs 0.375 properly masked) counts at once.
    assert replay(Rule("soft", 1, 2), [proper, close], weights, labels, **settings) == ("properly_masked", 2)
    # Unsure: a 0.1 lead is inside a 0.2 margin, so it waits; one more clear frame decides.
    unsure = Rule("unsure", 1, 2, 0.2)
    assert replay(unsure, [close, close], weights, labels, **settings) == (None, None)
    assert replay(unsure, [close, close, improper], weights, labels, **settings) == ("improperly_masked", 3)
    # With five votes it stops waiting and counts what the soft vote says.
    assert replay(unsure, [close] * 6, weights, labels, **settings) == ("improperly_masked", 5)


def test_vote_rules_replay_of_the_shipped_rule_counts_what_the_runtime_counted(shared_data, tmp_path):
    import vote_rules

    out = tmp_path / "vote_rules.json"
    assert vote_rules.main(["--walk", "1", "--data", str(shared_data), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    agree = data["replay_agrees_with_runtime"]
    assert agree["of"] == sum(data["people"].values()) >= 2 and agree["people"] == agree["of"]
    shipped = next(r for r in data["rows"] if r["rule"].startswith("majority") and r["min_votes"] == 2
                   and r["improper_weight"] == round(data["bundle_weights"]["improperly_masked"], 4))
    for label in ("properly_masked", "improperly_masked", "unmasked"):
        assert shipped[label]["right"] == data["runtime"][label]["right"]
