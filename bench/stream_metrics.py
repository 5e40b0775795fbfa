"""What one pipeline did on a stream: stage ms, recall, false positives and the time to count.

The time to count is read from the runtime's own tracker (the CountEvents ``EdgeRuntime.process``
returns), so it is the gate's real counting path: a placed face is counted at the first event
whose box is on it, ``(count frame - frame it appeared) / STREAM_FPS`` seconds after it appeared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bench_common import summarize
from bench_frames import Stream

from maskipy.edge.geometry import iou
from maskipy.edge.preprocess import Box

STAGES = ("decode", "detect", "preprocess", "classify", "track_outputs")
# A found box counts as the true face when it overlaps enough or its centre lies in the face box:
# Haar frames a face tighter and squarer than the annotators did.
MATCH_IOU = 0.3
# The camera's nominal rate ([camera] fps default): frame index differences become seconds.
STREAM_FPS = 15.0
# The goal: a person is counted within this long of appearing.
COUNT_GOAL_S = 0.5


def matches(box: Box, face: Box) -> bool:
    """Whether a found box is a detection of ``face``."""
    return iou(face, box) >= MATCH_IOU or _centre_in(box, face)


def _centre_in(box: Box, face: Box) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    inside = face[0] <= cx <= face[0] + face[2] and face[1] <= cy <= face[1] + face[3]
    # A huge box around a small face is not a detection of it.
    return inside and 0.5 <= box[2] / max(1, face[2]) <= 2.0


def match_faces(truth: list[Box], found: list[Box],
                ignore: list[Box] | tuple[Box, ...] = ()) -> tuple[int, int]:
    """True faces found (greedy one-to-one) and found boxes that match no true face.

    Boxes on an ``ignore`` face (a real background's own face) are neither hits nor false.
    """
    used: set[int] = set()
    hits = 0
    for face in truth:
        for j, box in enumerate(found):
            if j not in used and matches(box, face):
                used.add(j)
                hits += 1
                break
    false = [b for j, b in enumerate(found) if j not in used and not any(matches(b, f) for f in ignore)]
    return hits, len(false)


@dataclass
class CountTally:
    """Time to count of the placed faces over streams, and counts that belong to no placed face."""

    seconds: list[float] = field(default_factory=list)
    people: int = 0
    extra: int = 0  # a placed face counted again (its track was lost and started over)
    background: int = 0  # a background photo's own face counted
    spurious: int = 0  # counted on nothing
    right_label: int = 0  # counted as the class the placed face's photo is labelled

    def add_stream(self, stream: Stream, events: list[tuple[int, Any]]) -> None:
        """Match each (frame index, CountEvent) to the placed face it is on in that frame."""
        frames = len(stream.frames)
        present = [i for i, enter in enumerate(stream.enters) if enter < frames]
        self.people += len(present)
        counted: set[int] = set()
        for index, event in events:
            _, boxes, ids = stream.frames[index]
            on = [(iou(box, event.box), face) for box, face in zip(boxes or [], ids, strict=True)
                  if matches(event.box, box)]
            if not on:
                if any(matches(event.box, f) for f in stream.ignore):
                    self.background += 1
                else:
                    self.spurious += 1
                continue
            face = max(on)[1]
            if face in counted:
                self.extra += 1
                continue
            counted.add(face)
            self.seconds.append((index - stream.enters[face]) / STREAM_FPS)
            self.right_label += int(bool(stream.labels) and event.label == stream.labels[face])

    def summary(self) -> dict[str, Any]:
        """Seconds to count (median, p90, max), shares counted and counted within the goal."""
        s = sorted(self.seconds)
        within = sum(1 for v in s if v <= COUNT_GOAL_S + 1e-9)
        return {"people": self.people, "counted": len(s),
                "counted_share": round(len(s) / self.people, 4) if self.people else None,
                "within_goal_share": round(within / self.people, 4) if self.people else None,
                "median_s": round(float(np.median(s)), 3) if s else None,
                "p90_s": round(s[min(len(s) - 1, int(np.ceil(0.9 * len(s))) - 1)], 3) if s else None,
                "max_s": round(s[-1], 3) if s else None,
                "counted_label_accuracy": round(self.right_label / len(s), 4) if s else None,
                "extra_counts": self.extra, "background_counts": self.background,
                "spurious_counts": self.spurious, "goal_s": COUNT_GOAL_S, "stream_fps": STREAM_FPS}


@dataclass
class Tally:
    """Per-frame stage milliseconds, detection hits and people counted of one pipeline on one frame type."""

    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    totals: list[float] = field(default_factory=list)
    truth: int = 0
    hits: int = 0
    false_positives: int = 0
    found: int = 0
    inferred: int = 0
    classified: int = 0
    counts: CountTally = field(default_factory=CountTally)

    def add(self, ms: dict[str, float], truth: list[Box] | None, found: list[Box], inferred: bool,
            ignore: list[Box] | tuple[Box, ...] = (), classified: int = 0) -> None:
        for stage in STAGES:
            self.stages[stage].append(ms.get(stage, 0.0))
        self.totals.append(sum(ms.values()))
        self.found += len(found)
        self.inferred += int(inferred)
        self.classified += classified
        if truth is not None:
            hits, false_pos = match_faces(truth, found, ignore)
            self.truth, self.hits, self.false_positives = (self.truth + len(truth), self.hits + hits,
                                                           self.false_positives + false_pos)

    def summary(self, labelled: bool, counts: bool = False) -> dict[str, Any]:
        frames = len(self.totals)
        mean = float(np.mean(self.totals)) if frames else 0.0
        no_decode = [t - d for t, d in zip(self.totals, self.stages["decode"], strict=True)]
        out = {"frames": frames, "inferred_frames": self.inferred,
               "stages_ms": {s: summarize(v) for s, v in self.stages.items()},
               "total_ms": summarize(self.totals),
               "fps": round(1000.0 / mean, 2) if mean else 0.0,
               "fps_excl_decode": round(1000.0 / float(np.mean(no_decode)), 2) if frames else 0.0,
               "faces_found_per_frame": round(self.found / frames, 3) if frames else 0.0,
               "faces_classified_per_frame": round(self.classified / frames, 3) if frames else 0.0,
               "true_faces": self.truth if labelled else None,
               "recall": round(self.hits / self.truth, 4) if labelled and self.truth else None,
               "false_positives_per_frame": round(self.false_positives / frames, 4)
               if labelled and frames else None}
        if counts and labelled:
            out["time_to_count"] = self.counts.summary()
        return out
