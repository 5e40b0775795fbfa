"""The gate's own verdict through its own eyes: detector + classifier + decision rule (+ tracker and
vote), as ``maskipy-edge run`` runs them, scored against annotated faces.

    python bench/gate_accuracy.py [--walk 30] [--seed 0] [--detector blazeface | --config INI]
                                  [--quick] [--json OUT]

One configuration per run: the shipped ``[detector]`` defaults (YuNet-n at 320 px) unless
``--detector``/``--config`` says otherwise, the bundled model (``edge/models/default``, or
``--model``) and the decision rule in its ``model.json``. Every frame goes through a real
``EdgeRuntime`` built from that config (``EdgeRuntime.process``: detect, ``crop_faces``, classify,
``choose``, tracker), so what is scored is what the gate decides, not a re-implementation.

**Static mode** (photos). The scenes-dev photos whose ``group`` is in the trainer's test split
(seed 0, test fraction 0.15: ``trainer.data.grouped_split``'s rule, as ``detector_compare.py``),
as they are (long side <= 640 px), through a runtime in still-image mode (the one
``maskipy-edge run`` uses on an image folder: every face judged on its own, ``not_face`` boxes
dropped). A gate box is matched to an annotated face when their IoU is >= 0.3, greedily one-to-one,
strongest detector score first, each box to the free face it overlaps most (``match_boxes``).
Per class and annotated face width (< 48, 48-80, 80-130, >= 130 px, and >= 48): n, ``detected``
(a detector box matched before the not_face check), ``found`` (a box the gate kept), ``right``
(found and given the annotated class), right | found, and the 3x3 confusion of found faces. An
*alert* is a verdict in ``[outputs] alert_classes`` (improperly_masked, unmasked). False alarms:
properly masked faces given an alert (per properly masked face found, per annotated one, and per
photo), and alerts
on boxes that match no annotated face (per photo; an upper bound: not every real face in these
photos is annotated, e.g. tiny crowd faces and backs of heads).

**Walk-through mode** (``--walk N`` people per class, seeded). Each person is a scenes-dev TEST face
(>= 64 px wide, so the largest frames upscale it at most ~3x), cut from its photo with a 35% margin
each side (edges repeated where the photo ends). Why these and not realworld-photos crops: they are
the same test groups as static mode (the model never trained on them), the annotated box is exact,
and the wider margin covers the whole classifier crop around a detector box (YuNet boxes x 1.22
framing x 1.4 crop margin ~ 1.7 face widths), so the crop shows the person's own hair and shoulders
rather than pasted background. Faces whose cut-out overlaps another annotated face (> 20% of it) are
skipped, so a neighbour is not walked in too. Each person is pasted with ``bench_frames.paste``
(feathered oval) onto one of the ten real ``scenes/`` photos at 640x480
(``bench_frames.real_background``, unblurred, their own faces kept as bystanders), walking up: face
width grows geometrically from 9-12% to 24-30% of the frame over WALK_FRAMES (18) frames while the
face drifts sideways (up to a quarter of the frame) and stays inside it, +-1.5 px hand-held jitter,
a mild Gaussian blur (sigma 0.3-0.8), sensor noise (sigma 3) and a JPEG round trip (quality 90), as
``bench_frames`` composes frames. Those photos are portraits whose own faces fill much of the frame,
and a small face pasted onto a big one is no scene a camera sees (the nearer person would hide the
farther one), so each person gets the first background, in a seeded order, with a path (of 30 random
ones) on which their face box and a bystander's face overlap by at most 5% of either (else the least
overlapping path seen): backgrounds with room beside their bystander are drawn more often. The
backgrounds come from ``bench_frames`` (``../shared/data/scenes``); ``--data`` moves only the
scenes-dev photos. Before the person enters, 2 + (0 .. every_n_frames-1) empty frames run, so people
arrive at every phase of the detection cycle. A fresh runtime per person (a new camera session), its
clock at ``[camera] fps``, the shipped tracker and vote (``[tracking]``, ``every_n_frames``). A
count event belongs to the person when its box has IoU >= 0.3 with the pasted face in that frame; to
a bystander when it matches a background's own face (``bench_frames.own_faces``); else it is a stray
count. Per class: counted right, counted as each other class, not counted (the first count decides,
as the gate counts a person once), people counted more than once, frames from entering to the count
and the face width then; alerts per 100 properly masked people (people with any alert count).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_frames
from bench_common import DATA, REPO, bench_main, format_table, provenance, repo_relative, resolve_bundle
from bench_pipelines import RecordingDetector, default_config_dict
from detector_compare import test_photos

from maskipy.edge.config import EdgeConfig, load_edge_config
from maskipy.edge.geometry import iou
from maskipy.edge.preprocess import Box, read_image

CLASSES = ("properly_masked", "improperly_masked", "unmasked")
SHORT = {"properly_masked": "P", "improperly_masked": "I", "unmasked": "U"}
BINS = ((0, 48, "<48"), (48, 80, "48-80"), (80, 130, "80-130"), (130, 1_000_000, ">=130"))
WIDTHS = (*(name for _, _, name in BINS), ">=48", "all")
MATCH_IOU = 0.3
SEED = 0
# Named detector configs for --detector (the INI files the README points a gate owner to).
DETECTORS = {"default": None, "blazeface": REPO / "edge" / "blazeface-detector.ini",
             "hall": REPO / "edge" / "hall-detector.ini", "thorough": REPO / "edge" / "thorough-detector.ini"}
FRAME_SIZE = (640, 480)
WALK_FRAMES = 18
WALK_MIN_WIDTH = 64
WALK_MARGIN = 0.35
WALK_START_SHARE = (0.09, 0.12)
WALK_END_SHARE = (0.24, 0.30)
WALK_PATHS = 30
WALK_MAX_COVER = 0.05
QUICK_PHOTOS = 12
QUICK_WALK = 2


# --- matching -------------------------------------------------------------------------------------

def match_boxes(truth: Sequence[Box], boxes: Sequence[Box], scores: Sequence[float],
                threshold: float = MATCH_IOU) -> tuple[list[int | None], list[int]]:
    """For each true face the index of the box matched to it (None: not found), and the boxes
    matching no face. Greedy one-to-one: boxes strongest first, each to the free face it overlaps
    most, when that IoU is >= ``threshold``."""
    owner: list[int | None] = [None] * len(truth)
    for j in sorted(range(len(boxes)), key=lambda j: (-scores[j], j)):
        free = [(iou(boxes[j], face), -i) for i, face in enumerate(truth) if owner[i] is None]
        if free:
            overlap, negative = max(free)
            if overlap >= threshold:
                owner[-negative] = j
    taken = {j for j in owner if j is not None}
    return owner, [j for j in range(len(boxes)) if j not in taken]


def width_bin(width: float) -> str:
    return next(name for low, high, name in BINS if low <= width < high)


def in_width(width: float, name: str) -> bool:
    return name == "all" or (width >= 48 if name == ">=48" else width_bin(width) == name)


# --- the gate ---------------------------------------------------------------------------------------

def gate_config(path: Path | None, state_dir: Path) -> EdgeConfig:
    """The edge config (``path``, or the shipped defaults) with counts written to ``state_dir``."""
    config = load_edge_config(path)
    return dataclasses.replace(config, counts=dataclasses.replace(config.counts, state_dir=state_dir))


class Clock:
    """The scene's time: frame index / camera fps (so the tracker's expiry sees camera time)."""

    def __init__(self, fps: float) -> None:
        self.fps, self.frame = fps, 0

    def __call__(self) -> float:
        return self.frame / self.fps


def make_runtime(config: EdgeConfig, bundle: Path, *, stills: bool, clock: Clock | None = None) -> Any:
    """A real EdgeRuntime on an empty replay source; its detector records its last boxes (scores)."""
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier
    from maskipy.edge.sources.replay import ReplaySource

    extra = {"clock": clock} if clock is not None else {}
    runtime = EdgeRuntime(config, model=bundle, notifier=SystemdNotifier(""),
                          source_opener=lambda: ReplaySource([], name="gate_accuracy", stills=stills),
                          **extra)
    if runtime.model.problem:
        runtime.close()
        raise SystemExit(f"gate_accuracy: the model did not load as asked: {runtime.model.problem}")
    runtime.detector = RecordingDetector(runtime.detector)
    return runtime


def progress(items: Sequence[Any], desc: str) -> Any:
    """A tqdm bar on stderr (a line every ~10 s when not a terminal), or the items as they are."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, file=sys.stderr, mininterval=10 if not sys.stderr.isatty() else 0.5,
                leave=False)


# --- static mode --------------------------------------------------------------------------------------

def static_mode(config: EdgeConfig, bundle: Path, photos: list[tuple[str, list[dict[str, Any]]]],
                data: Path) -> dict[str, Any]:
    """Every test photo through a still-image runtime; per-face records and per-photo false alarms."""
    alert = set(config.outputs.alert_classes)
    runtime = make_runtime(config, bundle, stills=True)
    faces_out: list[dict[str, Any]] = []
    photo_out: list[dict[str, int]] = []
    try:
        for path, faces in progress(photos, "static"):
            frame = read_image(str(data / path))
            events = runtime.process(frame)
            detections = runtime.detector.last
            score = {}
            for d in detections:
                score[d.box] = max(d.score, score.get(d.box, float("-inf")))
            truth = [f["box"] for f in faces]
            detected, _ = match_boxes(truth, [d.box for d in detections], [d.score for d in detections])
            kept, stray = match_boxes(truth, [e.box for e in events], [score[e.box] for e in events])
            for face, before, after in zip(faces, detected, kept, strict=True):
                faces_out.append({"label": face["label"], "width": face["box"][2],
                                  "detected": before is not None,
                                  "verdict": events[after].label if after is not None else None})
            photo_out.append({"boxes": len(detections), "kept": len(events), "unmatched": len(stray),
                              "unmatched_alerts": sum(events[j].label in alert for j in stray),
                              "unmatched_alerts_48": sum(events[j].label in alert and events[j].box[2] >= 48
                                                         for j in stray)})
    finally:
        runtime.close()
    return summarize_static(faces_out, photo_out, alert)


def summarize_static(faces: list[dict[str, Any]], photos: list[dict[str, int]], alert: set[str]
                     ) -> dict[str, Any]:
    """Rows per class x width, confusions of found faces and the false alarms (module docstring)."""
    rows: dict[str, dict[str, Any]] = {}
    confusion: dict[str, dict[str, dict[str, int]]] = {}
    for width in WIDTHS:
        confusion[width] = {c: dict.fromkeys(CLASSES, 0) for c in CLASSES}
        for group in (*CLASSES, "all"):
            these = [f for f in faces if in_width(f["width"], width) and group in ("all", f["label"])]
            n, found = len(these), sum(f["verdict"] is not None for f in these)
            right = sum(f["verdict"] == f["label"] for f in these)
            rows[f"{group}/{width}"] = {
                "n": n, "detected": sum(f["detected"] for f in these), "found": found, "right": right,
                "found_rate": _ratio(found, n), "right_given_found": _ratio(right, found),
                "found_and_right_rate": _ratio(right, n)}
            if group != "all":
                for f in these:
                    if f["verdict"] is not None:
                        confusion[width][group][f["verdict"]] += 1
    n_photos = len(photos)
    false_alarms: dict[str, Any] = {"photos": n_photos}
    for width in ("all", ">=48"):
        annotated = sum(f["label"] == "properly_masked" and in_width(f["width"], width) for f in faces)
        proper = [f for f in faces if f["label"] == "properly_masked" and in_width(f["width"], width)
                  and f["verdict"] is not None]
        alarmed = sum(f["verdict"] in alert for f in proper)
        false_alarms[f"properly_masked/{width}"] = {
            "annotated": annotated, "found": len(proper), "alerts": alarmed,
            "per_found": _ratio(alarmed, len(proper)), "per_annotated": _ratio(alarmed, annotated),
            "per_photo": _ratio(alarmed, n_photos)}
    unmatched_alerts = sum(p["unmatched_alerts"] for p in photos)
    false_alarms["unmatched"] = {
        "boxes": sum(p["unmatched"] for p in photos), "per_photo": _ratio(sum(p["unmatched"] for p in photos),
                                                                          n_photos),
        "alerts": unmatched_alerts, "alerts_per_photo": _ratio(unmatched_alerts, n_photos),
        "alerts_48": sum(p["unmatched_alerts_48"] for p in photos),
        "alerts_48_per_photo": _ratio(sum(p["unmatched_alerts_48"] for p in photos), n_photos)}
    wrong = false_alarms["properly_masked/all"]["alerts"] + unmatched_alerts
    false_alarms["false_alerts_per_photo"] = _ratio(wrong, n_photos)
    return {"photos": n_photos, "faces": len(faces), "boxes": sum(p["boxes"] for p in photos),
            "kept_boxes": sum(p["kept"] for p in photos), "rows": rows, "confusion": confusion,
            "false_alarms": false_alarms}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


# --- walk-through mode ---------------------------------------------------------------------------------

def walk_faces(data: Path, photos: list[tuple[str, list[dict[str, Any]]]], per_class: int, seed: int
               ) -> dict[str, list[tuple[bench_frames.Face, str]]]:
    """``per_class`` test faces per class cut out with WALK_MARGIN (module docstring), seeded; each
    with the photo it came from."""
    candidates: dict[str, list[tuple[str, int]]] = {c: [] for c in CLASSES}
    for path, faces in photos:
        for i, face in enumerate(faces):
            x, y, w, h = face["box"]
            if w < WALK_MIN_WIDTH or face["label"] not in candidates:
                continue
            grow = 1 + 2 * WALK_MARGIN
            cut = (x - WALK_MARGIN * w, y - WALK_MARGIN * h, w * grow, h * grow)
            crowded = any(k != i and _share_inside(other["box"], cut) > 0.2 for k, other in enumerate(faces))
            if not crowded:
                candidates[face["label"]].append((path, i))
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[tuple[bench_frames.Face, str]]] = {}
    by_path = dict(photos)
    for label in CLASSES:
        order = rng.permutation(len(candidates[label]))[:per_class]
        chosen[label] = []
        for index in order:
            path, i = candidates[label][int(index)]
            chosen[label].append((cut_face(read_image(str(data / path)), by_path[path][i]), path))
    return chosen


def _share_inside(box: Sequence[float], region: Sequence[float]) -> float:
    """The share of ``box`` that lies inside ``region`` (both x, y, w, h)."""
    iw = max(0.0, min(box[0] + box[2], region[0] + region[2]) - max(box[0], region[0]))
    ih = max(0.0, min(box[1] + box[3], region[1] + region[3]) - max(box[1], region[1]))
    return iw * ih / max(1.0, box[2] * box[3])


def cut_face(image: np.ndarray, face: dict[str, Any]) -> bench_frames.Face:
    """The face with WALK_MARGIN each side, edges repeated where the photo ends."""
    x, y, w, h = face["box"]
    mx, my = int(round(WALK_MARGIN * w)), int(round(WALK_MARGIN * h))
    pad = max(mx, my)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[y + pad - my:y + pad + h + my, x + pad - mx:x + pad + w + mx].copy()
    return bench_frames.Face(crop, face["label"], (mx, my, w, h))


@dataclasses.dataclass
class Walk:
    """One person walking up: where their face box is in each frame they are in."""

    background: int
    lead: int  # empty frames before they enter
    widths: list[float]
    centres: list[tuple[float, float]]


def plan_walk(face: bench_frames.Face, rng: np.random.Generator, every_n: int, backgrounds: int) -> Walk:
    """A background and path for one person: backgrounds in a seeded order, WALK_PATHS random paths
    on each; the first path whose face box covers a bystander's face (or is covered by it) by at most
    WALK_MAX_COVER, else the least covering one seen (module docstring)."""
    width, height = FRAME_SIZE
    aspect = face.box[3] / face.box[2]
    best: tuple[float, Walk] | None = None
    lead = 2 + int(rng.integers(every_n))
    for background in (int(b) for b in rng.permutation(backgrounds)):
        own = bench_frames.own_faces(FRAME_SIZE, background)
        for _ in range(WALK_PATHS):
            w0, w1 = rng.uniform(*WALK_START_SHARE) * width, rng.uniform(*WALK_END_SHARE) * width
            widths = [w0 * (w1 / w0) ** (t / (WALK_FRAMES - 1)) for t in range(WALK_FRAMES)]
            start = (rng.uniform(w0 / 2, width - w0 / 2), rng.uniform(0.38, 0.5) * height)
            end = (start[0] + rng.uniform(-0.25, 0.25) * width, rng.uniform(0.42, 0.5) * height)
            centres = []
            for w in widths:
                share = (w - widths[0]) / (widths[-1] - widths[0])
                # The face stays inside the frame.
                cx = min(max(start[0] + (end[0] - start[0]) * share, w / 2), width - w / 2)
                half = 0.5 * w * aspect
                cy = min(max(start[1] + (end[1] - start[1]) * share, half), height - half)
                centres.append((cx, cy))
            walk = Walk(background, lead, widths, centres)
            cover = max((max(_share_inside(o, b), _share_inside(b, o)) for b in walk_boxes(walk, aspect)
                         for o in own), default=0.0)
            if best is None or cover < best[0]:
                best = (cover, walk)
            if cover <= WALK_MAX_COVER:
                return walk
    assert best is not None
    return best[1]


def walk_boxes(walk: Walk, aspect: float) -> list[tuple[float, float, float, float]]:
    return [(cx - w / 2, cy - w * aspect / 2, w, w * aspect) for (cx, cy), w in zip(walk.centres, walk.widths,
                                                                                    strict=True)]


def walk_frames(face: bench_frames.Face, walk: Walk, rng: np.random.Generator
                ) -> list[tuple[np.ndarray, Box | None]]:
    """The frames of one walk (lead-in frames first) and the pasted face box in each (None: not in)."""
    backdrop = bench_frames.real_background(FRAME_SIZE, walk.background)
    blur = float(rng.uniform(0.3, 0.8))
    aspect = face.box[3] / face.box[2]
    boxes: list[tuple[float, float, float, float] | None] = [None] * walk.lead
    boxes += walk_boxes(walk, aspect)
    frames = []
    for box in boxes:
        frame = backdrop.copy()
        truth = None
        if box is not None:
            jx, jy = rng.normal(0, 1.5, 2)
            truth = bench_frames.paste(frame, face, box[0] + jx, box[1] + jy, box[2])
        frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=blur)
        noisy = np.clip(frame.astype(np.float32) + rng.normal(0, 3.0, frame.shape), 0, 255).astype(np.uint8)
        decoded = cv2.imdecode(np.frombuffer(bench_frames.encode(noisy), np.uint8), cv2.IMREAD_COLOR)
        frames.append((decoded, truth))
    return frames


def on_face(box: Box, face: Box) -> bool:
    """A count's box is on a background's own face (IoU, or its centre inside at 0.5-2x width)."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    inside = face[0] <= cx <= face[0] + face[2] and face[1] <= cy <= face[1] + face[3]
    return iou(box, face) >= MATCH_IOU or (inside and 0.5 <= box[2] / max(1, face[2]) <= 2.0)


# Called with a walk's runtime; returns what to call after each frame with the person's box in it.
Instrument = Callable[[Any], Callable[[Box | None], None]]


def walk_one(config: EdgeConfig, bundle: Path, face: bench_frames.Face, walk: Walk,
             rng: np.random.Generator, instrument: Instrument | None = None) -> dict[str, Any]:
    """One person through a fresh runtime: their counts, bystander counts and stray counts.

    ``instrument(runtime)``, when given, is called once the runtime is built and returns a callback
    called after each frame with the person's pasted box in it (None before they enter), so another
    bench can look inside the same walk (``vote_rules.py``)."""
    alert = set(config.outputs.alert_classes)
    own = bench_frames.own_faces(FRAME_SIZE, walk.background)
    clock = Clock(float(config.camera.fps))
    runtime = make_runtime(config, bundle, stills=False, clock=clock)
    after_frame = instrument(runtime) if instrument is not None else None
    mine: list[tuple[int, str, int]] = []
    bystander = 0
    stray: list[dict[str, Any]] = []
    try:
        for index, (frame, truth) in enumerate(walk_frames(face, walk, rng)):
            clock.frame = index
            for event in runtime.process(frame):
                if truth is not None and iou(event.box, truth) >= MATCH_IOU:
                    mine.append((index - walk.lead, event.label, truth[2]))
                elif any(on_face(event.box, o) for o in own):
                    bystander += 1
                else:
                    stray.append({"frame": index - walk.lead, "box": list(event.box), "label": event.label,
                                  "iou_with_person": round(iou(event.box, truth), 3) if truth else None})
            if after_frame is not None:
                after_frame(truth)
    finally:
        runtime.close()
    first = mine[0] if mine else None
    return {"label": face.label, "counted_as": first[1] if first else None,
            "count_frame": first[0] if first else None, "count_width": first[2] if first else None,
            "counts": len(mine), "alert": any(label in alert for _, label, _ in mine),
            "bystander_counts": bystander, "stray_counts": len(stray),
            "stray_alerts": sum(s["label"] in alert for s in stray), "stray": stray}


def walk_mode(config: EdgeConfig, bundle: Path, data: Path, photos: list[tuple[str, list[dict[str, Any]]]],
              per_class: int, seed: int, instrument: Instrument | None = None) -> dict[str, Any]:
    """``per_class`` people per class walking up to the gate (module docstring); ``instrument`` is
    passed to each person's ``walk_one``, in the order of the result's ``people``."""
    people = walk_faces(data, photos, per_class, seed)
    scenes = len(bench_frames.scene_photos())
    jobs = [(label, k, face, path) for label in CLASSES for k, (face, path) in enumerate(people[label])]
    records = []
    for label, k, face, path in progress(jobs, "walk"):
        rng = np.random.default_rng([seed, CLASSES.index(label), k])
        walk = plan_walk(face, rng, config.detector.every_n_frames, scenes)
        record = walk_one(config, bundle, face, walk, rng, instrument)
        record.update({"photo": path, "face_width": face.box[2], "background": walk.background,
                       "background_photo": "/".join(bench_frames.scene_photos()[walk.background].parts[-2:])})
        records.append(record)
    return summarize_walk(records, config.outputs.alert_classes, per_class)


def summarize_walk(records: list[dict[str, Any]], alert_classes: Sequence[str], asked: int) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for label in CLASSES:
        mine = [r for r in records if r["label"] == label]
        counted = [r for r in mine if r["counted_as"] is not None]
        rows[label] = {
            "n": len(mine), "counted_as": {c: sum(r["counted_as"] == c for r in mine) for c in CLASSES},
            "not_counted": len(mine) - len(counted), "right": sum(r["counted_as"] == label for r in mine),
            "right_rate": _ratio(sum(r["counted_as"] == label for r in mine), len(mine)),
            "alert_people": sum(r["alert"] for r in mine),
            "counted_more_than_once": sum(r["counts"] > 1 for r in mine),
            "median_count_frame": statistics.median([r["count_frame"] for r in counted]) if counted else None,
            "median_count_width": statistics.median([r["count_width"] for r in counted]) if counted else None}
    proper = rows["properly_masked"]
    return {"asked_per_class": asked, "frames_per_walk": WALK_FRAMES, "rows": rows,
            "alerts_per_100_properly_masked": round(100 * proper["alert_people"] / proper["n"], 2)
            if proper["n"] else None,
            "alert_classes": list(alert_classes),
            "bystander_counts": sum(r["bystander_counts"] for r in records),
            "stray_counts": sum(r["stray_counts"] for r in records),
            "stray_alerts": sum(r["stray_alerts"] for r in records), "people": records}


# --- bench_main plumbing -------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--walk", type=int, default=30,
                        help="people per class in walk-through mode (0: skip)")
    parser.add_argument("--seed", type=int, default=SEED, help="walk-through faces, backgrounds and paths")
    parser.add_argument("--detector", choices=sorted(DETECTORS), default="default",
                        help="a shipped detector profile: blazeface = edge/blazeface-detector.ini, ...")
    parser.add_argument("--config", type=Path, default=None,
                        help="an edge config INI (overrides --detector)")
    parser.add_argument("--model", type=Path, default=None,
                        help="bundle directory (default: the shipped one)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_PHOTOS} test photos and {QUICK_WALK} people per class (a smoke run)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    cv2.setNumThreads(2)
    started = time.perf_counter()
    config_path = args.config or DETECTORS[args.detector]
    bundle, origin = resolve_bundle(args.model)
    record = provenance(bundle, origin)
    photos = test_photos(args.data)
    all_photos = photos
    walk_n = args.walk
    if args.quick:
        photos = photos[::max(1, len(photos) // QUICK_PHOTOS)][:QUICK_PHOTOS]
        walk_n = min(walk_n, QUICK_WALK)
    with tempfile.TemporaryDirectory(prefix="gate-accuracy-") as state:
        config = gate_config(config_path, Path(state))
        static = static_mode(config, bundle, photos, args.data)
        t_static = time.perf_counter() - started
        walk = walk_mode(config, bundle, args.data, all_photos, walk_n, args.seed) if walk_n > 0 else None
    from maskipy.edge.bundle import load_bundle
    from maskipy.edge.classifier.decision import DecisionRule

    loaded = load_bundle(bundle)
    rule = DecisionRule.from_metadata(loaded.metadata, loaded.labels)
    return {"benchmark": "gate_accuracy", "seed": args.seed, "split": {"seed": 0, "test_fraction": 0.15},
            "quick": bool(args.quick),
            "edge_config": repo_relative(config_path) if config_path else "defaults",
            "config": default_config_dict(config),
            "decision": {"temperature": rule.temperature, "weights": dict(zip(loaded.labels, rule.weights,
                                                                              strict=True))},
            "match_iou": MATCH_IOU, "photos": static["photos"], "faces": static["faces"],
            "static": static, "walk": walk,
            "wall_s": {"static": round(t_static, 1), "total": round(time.perf_counter() - started, 1)},
            "provenance": record}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_report(result: dict[str, Any]) -> None:
    static = result["static"]
    print(f"gate_accuracy ({result['edge_config']}): {static['photos']} test photos, "
          f"{static['faces']} faces, {static['boxes']} detector boxes, "
          f"{static['kept_boxes']} kept after not_face")
    rows = []
    for group in (*CLASSES, "all"):
        for width in WIDTHS:
            r = static["rows"][f"{group}/{width}"]
            rows.append([group, width, r["n"], r["detected"], r["found"], _pct(r["found_rate"]),
                         _pct(r["right_given_found"]), _pct(r["found_and_right_rate"])])
    print("\nstatic: photos through the gate (found = a kept box, IoU >= 0.3)")
    print(format_table(["class", "width", "n", "detected", "found", "found%", "right|found", "found&right"],
                       rows))
    for width in ("all", ">=48"):
        print(f"\nconfusion of found faces, width {width} (rows: annotated, columns: gate's verdict)")
        matrix = static["confusion"][width]
        print(format_table(["", *[SHORT[c] for c in CLASSES], "found"],
                           [[SHORT[t], *[matrix[t][p] for p in CLASSES], sum(matrix[t].values())]
                            for t in CLASSES]))
    fa = static["false_alarms"]
    print("\nfalse alarms")
    for width in ("all", ">=48"):
        p = fa[f"properly_masked/{width}"]
        print(f"  properly masked ({width}) given an alert: {p['alerts']}/{p['found']} found = "
              f"{_pct(p['per_found'])} ({p['alerts']}/{p['annotated']} annotated = "
              f"{_pct(p['per_annotated'])}), {p['per_photo']} per photo")
    u = fa["unmatched"]
    print(f"  boxes matching no annotated face: {u['boxes']} ({u['per_photo']} per photo); alerts among them "
          f"{u['alerts']} ({u['alerts_per_photo']} per photo; >= 48 px: {u['alerts_48']})")
    print(f"  false alerts per photo (properly masked + unmatched): {fa['false_alerts_per_photo']}")
    walk = result["walk"]
    if walk:
        print(f"\nwalk-through: {walk['asked_per_class']} people per class asked, "
              f"{walk['frames_per_walk']} frames each (counted as: the first count of the person)")
        rows = [[c, r["n"], r["right"], *[r["counted_as"][o] for o in CLASSES], r["not_counted"],
                 r["counted_more_than_once"], r["median_count_frame"], r["median_count_width"]]
                for c, r in walk["rows"].items()]
        print(format_table(["class", "n", "right", "as P", "as I", "as U", "not counted", "recounted",
                            "frame@count", "width@count"], rows))
        print(f"  alerts per 100 properly masked people: {walk['alerts_per_100_properly_masked']}; "
              f"bystander counts {walk['bystander_counts']}, stray counts {walk['stray_counts']} "
              f"({walk['stray_alerts']} alerts)")
    print(f"\nwall: {result['wall_s']}")


def main(argv: list[str] | None = None) -> int:
    return bench_main(__file__, __doc__, add_arguments, run, print_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
