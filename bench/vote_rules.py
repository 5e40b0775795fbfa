"""Per-person decision rules replayed on the gate's own walk-through frames (issue #18).

The gate counts a person once, when the vote over their last frames settles (``[tracking]``
``vote_frames``, ``min_votes``). Would another per-person rule count people better: a soft vote
(averaged probabilities instead of per-frame labels), more votes before counting, or an *unsure*
outcome that does not alert but waits for more frames while the top two classes are close?

Each person of ``gate_accuracy.py``'s walk-through (the same scenes-dev test faces, backgrounds,
paths and seeds) walks through a fresh ``EdgeRuntime`` exactly as there; the calibrated
probabilities of every detection are recorded per inferred frame. The person's sequence is the
probabilities of the detection matching their pasted face (IoU >= 0.3) in each frame. Rules replayed
on those sequences, each at several improperly masked weights (the bundle's times a factor):

- ``majority``: what the gate does: each frame's weighted argmax is a vote (``not_face`` and votes
  under ``min_confidence`` dropped); the first label holding ``min_votes`` of the last
  ``vote_frames`` votes counts the person (ties as ``Track.tally`` breaks them: it is that code);
- ``soft``: the mean calibrated probabilities of the last ``vote_frames`` votes, weighted argmax,
  once there are ``min_votes`` of them;
- ``unsure``: ``soft``, but while the top two weighted (renormalised) probabilities are within
  ``margin`` the person is not counted yet, up to ``vote_frames`` votes, then counted as ``soft``
  says. A person who leaves first is not counted (reported).

The replayed ``majority`` rule with the bundle's own weight and the shipped ``[tracking]`` must give
the class the runtime counted: the agreement is reported (a disagreement is the replay's fault, e.g.
a track that the tracker split, not the rule's).

    python bench/vote_rules.py [--walk 70] [--model DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gate_accuracy
from bench_common import DATA, bench_main, format_table, provenance, resolve_bundle
from detector_compare import test_photos

from maskipy.edge.classifier.decision import DecisionRule
from maskipy.edge.geometry import iou
from maskipy.edge.preprocess import Box
from maskipy.edge.tracking import Track

CLASSES = gate_accuracy.CLASSES
WEIGHT_FACTORS = (0.5, 1.0, 2.0, 3.0)
MARGINS = (0.2, 0.4)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One per-person rule: ``kind`` majority / soft / unsure (module docstring)."""

    kind: str
    weight_factor: float
    min_votes: int
    margin: float = 0.0

    @property
    def name(self) -> str:
        extra = f" margin {self.margin}" if self.kind == "unsure" else ""
        return f"{self.kind} min {self.min_votes}{extra}"


def rules(shipped_min_votes: int) -> list[Rule]:
    """The grid: each kind at the shipped ``min_votes`` (and one more), at every weight factor."""
    grid = []
    for factor in WEIGHT_FACTORS:
        grid += [Rule("majority", factor, shipped_min_votes), Rule("majority", factor, shipped_min_votes + 1),
                 Rule("soft", factor, shipped_min_votes), Rule("soft", factor, shipped_min_votes + 1),
                 *(Rule("unsure", factor, shipped_min_votes, m) for m in MARGINS)]
    return grid


class FrameRecorder:
    """Records, for each walk, every inferred frame's boxes with their calibrated probabilities and
    the person's pasted box (``gate_accuracy.walk_one``'s ``instrument``)."""

    def __init__(self) -> None:
        self.walks: list[list[tuple[Box | None, list[tuple[Box, np.ndarray]] | None]]] = []

    def __call__(self, runtime: Any) -> Any:
        frames: list[tuple[Box | None, list[tuple[Box, np.ndarray]] | None]] = []
        self.walks.append(frames)
        seen: dict[str, Any] = {"faces": None}
        classify, observe = runtime.model.classifier.classify, runtime.observe

        def recording_classify(crops: np.ndarray) -> np.ndarray:
            seen["probs"] = probs = classify(crops)
            return probs

        def recording_observe(frame: np.ndarray) -> list[Any]:
            seen["probs"] = np.zeros((0, 0), np.float32)
            observations = observe(frame)
            seen["faces"] = [(o.box, p) for o, p in zip(observations, seen["probs"], strict=True)]
            return observations

        # Instance attributes shadow the methods: the runtime calls these, nothing else changes.
        runtime.model.classifier.classify, runtime.observe = recording_classify, recording_observe

        def after_frame(truth: Box | None) -> None:
            frames.append((truth, seen["faces"]))
            seen["faces"] = None  # a frame without inference records None

        return after_frame


def person_sequence(frames: list[tuple[Box | None, list[tuple[Box, np.ndarray]] | None]]) -> list[np.ndarray]:
    """The probabilities of the detection on the person, in each inferred frame they are found in."""
    sequence = []
    for truth, faces in frames:
        if truth is None or not faces:
            continue
        overlap, probs = max(((iou(box, truth), p) for box, p in faces), key=lambda item: item[0])
        if overlap >= gate_accuracy.MATCH_IOU:
            sequence.append(probs)
    return sequence


def replay(rule: Rule, sequence: list[np.ndarray], weights: np.ndarray, labels: tuple[str, ...],
           reject: str, min_confidence: float, vote_frames: int) -> tuple[str | None, int | None]:
    """The class the rule counts the person as and after how many votes (None: not counted)."""
    choose = DecisionRule(1.0, tuple(map(float, weights))).choose  # the probabilities are calibrated
    keep = np.array([label != reject for label in labels])
    window: deque[np.ndarray] = deque(maxlen=vote_frames)
    track = Track(0, (0, 0, 0, 0), 0.0, 0.0, deque(maxlen=vote_frames))
    votes = 0
    for probs in sequence:
        pick = int(choose(probs[None])[0])
        if labels[pick] == reject or probs[pick] < min_confidence:
            continue
        votes += 1
        if rule.kind == "majority":
            track.votes.append((labels[pick], float(probs[pick])))
            label, count, _ = track.tally()
            if count >= rule.min_votes:
                return label, votes
            continue
        window.append(probs)
        if len(window) < rule.min_votes:
            continue
        weighted = np.mean(window, axis=0) * weights * keep
        order = np.argsort(weighted)[::-1]
        shares = weighted / max(float(weighted.sum()), 1e-12)
        close = shares[order[0]] - shares[order[1]] < rule.margin
        if rule.kind == "unsure" and close and len(window) < vote_frames:
            continue
        return labels[int(order[0])], votes
    return None, None


def score(rule: Rule, people: list[dict[str, Any]], sequences: list[list[np.ndarray]], base: np.ndarray,
          improper: int, labels: tuple[str, ...], settings: dict[str, Any], alert: set[str]
          ) -> dict[str, Any]:
    """What the rule counts each class as over the walked people (the bundle's weights, the improperly
    masked one times the rule's factor)."""
    weights = base.copy()
    weights[improper] *= rule.weight_factor
    outcome = [replay(rule, s, weights, labels, **settings) for s in sequences]
    row: dict[str, Any] = {"rule": rule.name, "kind": rule.kind, "min_votes": rule.min_votes,
                           "margin": rule.margin, "improper_weight": round(float(weights[improper]), 4)}
    for label in CLASSES:
        mine = [o for p, o in zip(people, outcome, strict=True) if p["label"] == label]
        row[label] = {"n": len(mine), "right": sum(o[0] == label for o in mine),
                      "counted_as": {c: sum(o[0] == c for o in mine) for c in CLASSES},
                      "not_counted": sum(o[0] is None for o in mine),
                      "alerts": sum(o[0] in alert for o in mine)}
    counted = [o[1] for o in outcome if o[1] is not None]
    row["median_votes_to_count"] = statistics.median(counted) if counted else None
    return row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--walk", type=int, default=70,
                        help="people per class (scenes-dev test faces: fewer improperly masked exist)")
    parser.add_argument("--seed", type=int, default=gate_accuracy.SEED)
    parser.add_argument("--model", type=Path, default=None,
                        help="bundle directory (default: the shipped one)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from maskipy.edge.bundle import load_bundle

    started = time.perf_counter()
    bundle, origin = resolve_bundle(args.model)
    record = provenance(bundle, origin)
    recorder = FrameRecorder()
    with tempfile.TemporaryDirectory(prefix="vote-rules-") as state:
        config = gate_accuracy.gate_config(None, Path(state))
        walk = gate_accuracy.walk_mode(config, bundle, args.data, test_photos(args.data), args.walk,
                                       args.seed, instrument=recorder)
    people = walk["people"]
    loaded = load_bundle(bundle)
    labels = loaded.labels
    base = np.asarray(DecisionRule.from_metadata(loaded.metadata, labels).weights, np.float32)
    settings = {"reject": config.classifier.reject_label, "min_confidence": config.classifier.min_confidence,
                "vote_frames": config.tracking.vote_frames}
    alert = set(config.outputs.alert_classes)
    sequences = [person_sequence(frames) for frames in recorder.walks]
    improper = labels.index("improperly_masked")
    rows = [score(rule, people, sequences, base, improper, labels, settings, alert)
            for rule in rules(config.tracking.min_votes)]
    shipped = Rule("majority", 1.0, config.tracking.min_votes)
    replayed = [replay(shipped, s, base, labels, **settings)[0] for s in sequences]
    agree = sum(r == p["counted_as"] for r, p in zip(replayed, people, strict=True))
    return {"benchmark": "vote_rules", "seed": args.seed, "asked_per_class": args.walk,
            "people": {c: sum(p["label"] == c for p in people) for c in CLASSES},
            "tracking": {"vote_frames": config.tracking.vote_frames, "min_votes": config.tracking.min_votes,
                         "every_n_frames": config.detector.every_n_frames},
            "bundle_weights": dict(zip(labels, map(float, base), strict=True)),
            "replay_agrees_with_runtime": {"people": agree, "of": len(people)},
            "runtime": {c: walk["rows"][c] for c in CLASSES}, "rows": rows,
            "wall_s": round(time.perf_counter() - started, 1), "provenance": record}


def print_report(result: dict[str, Any]) -> None:
    agree = result["replay_agrees_with_runtime"]
    print(f"walk-through people {result['people']}; the replayed shipped rule counts {agree['people']} of "
          f"{agree['of']} as the runtime did")
    headers = ["rule", "I weight", "P right", "P alerts", "I right", "I as P", "U right", "not counted",
               "votes"]
    table = []
    for row in result["rows"]:
        p, i, u = (row[c] for c in CLASSES)
        table.append([row["rule"], f"{row['improper_weight']:.3f}", f"{p['right']}/{p['n']}",
                      str(p["alerts"]), f"{i['right']}/{i['n']}", str(i["counted_as"]["properly_masked"]),
                      f"{u['right']}/{u['n']}", str(sum(row[c]["not_counted"] for c in CLASSES)),
                      str(row["median_votes_to_count"])])
    print(format_table(headers, table))


def main(argv: list[str] | None = None) -> int:
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, run, print_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
