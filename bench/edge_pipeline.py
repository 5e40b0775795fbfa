"""Seed pipeline vs maskipy's edge loop on the same camera-like frames: stage ms, frames/s, recall."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_frames
from bench_common import (
    RESULTS,
    format_table,
    load_seed_model,
    machine_info,
    report_and_save,
    resolve_bundle,
    summarize,
    tensorflow_available,
)
from bench_pipelines import EdgePipeline, SeedPipeline, default_config_dict, edge_config, haar_reference_ms

from maskipy.edge.detect import iou
from maskipy.edge.errors import ConfigError
from maskipy.edge.preprocess import Box

STAGES = ("decode", "detect", "preprocess", "classify", "track_outputs")
# A found box counts as the true face when it overlaps enough or its centre lies in the face box:
# Haar frames a face tighter and squarer than the annotators did.
MATCH_IOU = 0.3
# Public Pi 4 references (see README): Haar on a 320-px-wide frame, int8 MobileNetV2-224 per face.
PI4_HAAR_320_MS = 100.0
PI4_INT8_FACE_MS = 22.0
PI5_OVER_PI4 = 2.5
# Options that trade detector work for speed, measured against the same seed run (``--variants``).
VARIANTS: dict[str, dict[str, str]] = {
    "every_n_frames=2": {"detector.every_n_frames": "2"},
    "every_n_frames=3": {"detector.every_n_frames": "3"},
    "detect_width=240": {"detector.detect_width": "240"},
    "detect_width=240,every_n_frames=2": {"detector.detect_width": "240", "detector.every_n_frames": "2"},
    "detect_width=240,every_n_frames=3": {"detector.detect_width": "240", "detector.every_n_frames": "3"},
    "equalize=no": {"detector.equalize": "no"},
    # The eye-pair stage (finds masked faces the face cascade misses) costs a second cascade pass.
    "eye_cascades=off": {"detector.eye_cascades": ""},
    "eye_cascades=off,every_n_frames=3": {"detector.eye_cascades": "", "detector.every_n_frames": "3"},
}


@dataclass(frozen=True)
class FrameType:
    """A kind of test frame: composed at ``size`` with ``faces`` faces, or the real scene photos."""

    name: str
    size: tuple[int, int] | None
    faces: int


FRAME_TYPES = tuple([FrameType(f"{w}x{h}_{n}face", (w, h), n) for w, h in ((640, 480), (1280, 720))
                     for n in (0, 1, 4)] + [FrameType("scenes", None, -1)])


@dataclass
class Tally:
    """Per-frame stage milliseconds and detection hits of one pipeline on one frame type."""

    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    totals: list[float] = field(default_factory=list)
    truth: int = 0
    hits: int = 0
    false_positives: int = 0
    found: int = 0
    inferred: int = 0

    def add(self, ms: dict[str, float], truth: list[Box] | None, found: list[Box], inferred: bool) -> None:
        for stage in STAGES:
            self.stages[stage].append(ms.get(stage, 0.0))
        self.totals.append(sum(ms.values()))
        self.found += len(found)
        self.inferred += int(inferred)
        if truth is not None:
            hits, false_pos = match_faces(truth, found)
            self.truth, self.hits, self.false_positives = (self.truth + len(truth), self.hits + hits,
                                                           self.false_positives + false_pos)

    def summary(self, labelled: bool) -> dict[str, Any]:
        frames = len(self.totals)
        mean = float(np.mean(self.totals)) if frames else 0.0
        no_decode = [t - d for t, d in zip(self.totals, self.stages["decode"], strict=True)]
        return {"frames": frames, "inferred_frames": self.inferred,
                "stages_ms": {s: summarize(v) for s, v in self.stages.items()},
                "total_ms": summarize(self.totals),
                "fps": round(1000.0 / mean, 2) if mean else 0.0,
                "fps_excl_decode": round(1000.0 / float(np.mean(no_decode)), 2) if frames else 0.0,
                "faces_found_per_frame": round(self.found / frames, 3) if frames else 0.0,
                "true_faces": self.truth if labelled else None,
                "recall": round(self.hits / self.truth, 4) if labelled and self.truth else None,
                "false_positives_per_frame": round(self.false_positives / frames, 4)
                if labelled and frames else None}


def match_faces(truth: list[Box], found: list[Box]) -> tuple[int, int]:
    """True faces found (greedy one-to-one) and found boxes that match no true face."""
    used: set[int] = set()
    hits = 0
    for face in truth:
        for j, box in enumerate(found):
            if j not in used and (iou(face, box) >= MATCH_IOU or _centre_in(box, face)):
                used.add(j)
                hits += 1
                break
    return hits, len(found) - len(used)


def _centre_in(box: Box, face: Box) -> bool:
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    inside = face[0] <= cx <= face[0] + face[2] and face[1] <= cy <= face[1] + face[3]
    # A huge box around a small face is not a detection of it.
    return inside and 0.5 <= box[2] / max(1, face[2]) <= 2.0


def decode(jpeg: bytes) -> tuple[np.ndarray, float]:
    """Decode one JPEG frame; the milliseconds it took."""
    start = time.perf_counter()
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return frame, 1000.0 * (time.perf_counter() - start)


def run_stream(pipeline: Any, stream: list[tuple[bytes, list[Box] | None]], tally: Tally) -> None:
    """Feed one scene's consecutive frames to a pipeline (a fresh camera session) and tally them."""
    pipeline.start_stream()
    for jpeg, truth in stream:
        frame, decode_ms = decode(jpeg)
        ms, found, inferred = pipeline.process(frame)
        tally.add({"decode": decode_ms, **ms}, truth, found, inferred)


def build_streams(kind: FrameType, scenes: int, frames: int,
                  seed: int = 0) -> list[list[tuple[bytes, list[Box] | None]]]:
    """The JPEG frames of ``scenes`` streams of one frame type, made once and shared by all pipelines."""
    rng = np.random.default_rng(seed)
    if kind.size is None:
        photos = bench_frames.scene_photos()[:scenes]
        return [list(bench_frames.photo_stream(p, frames, seed + i)) for i, p in enumerate(photos)]
    pool = bench_frames.load_faces(max(1, kind.faces) * scenes, seed=seed + kind.faces)
    streams = []
    for i in range(scenes):
        faces = pool[i * kind.faces:(i + 1) * kind.faces] if kind.faces else []
        scene = bench_frames.compose_scene(kind.size, faces, rng, f"{kind.name}#{i}", index=i + kind.faces)
        streams.append(list(bench_frames.scene_stream(scene, frames, seed + i)))
    return streams


def speedup(edge: dict[str, Any], seed: dict[str, Any], key: str = "fps") -> float | None:
    """Edge frames/s over the seed's, from one run on the same frames."""
    return round(edge[key] / seed[key], 2) if seed[key] else None


def measure(streams_by_type: dict[str, list[list[tuple[bytes, list[Box] | None]]]],
            pipelines: dict[str, Any]) -> dict[str, dict[str, Tally]]:
    """Every pipeline on every stream; scene by scene, so a load spike hits all pipelines alike."""
    tallies = {t: {name: Tally() for name in pipelines} for t in streams_by_type}
    for type_name, streams in streams_by_type.items():
        for stream in streams:
            for name, pipeline in pipelines.items():
                run_stream(pipeline, stream, tallies[type_name][name])
    for pipeline in pipelines.values():
        if hasattr(pipeline, "close"):
            pipeline.close()
    return tallies


def make_pipelines(seed_model: Any, bundle: Path, state: Path,
                   variants: dict[str, dict[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The seed, the edge as shipped, the edge with each variant's overrides; and variants skipped.

    A variant naming a key this version of the config does not have is skipped with its error, so
    the benchmark still runs against an older or newer edge.
    """
    pipelines: dict[str, Any] = {"seed": SeedPipeline(seed_model),
                                 "edge": EdgePipeline(edge_config(state / "edge"), bundle)}
    skipped: dict[str, str] = {}
    for i, (name, overrides) in enumerate(variants.items()):
        try:
            config = edge_config(state / f"variant{i}", overrides)
        except ConfigError as exc:
            print(f"edge_pipeline: skipping variant {name}: {exc}", file=sys.stderr)
            skipped[name] = str(exc)
            continue
        pipelines[f"edge[{name}]"] = EdgePipeline(config, bundle)
    return pipelines, skipped


def run_benchmark(*, frames: int = 60, scenes: int = 2, scene_frames: int = 15,
                  types: Sequence[str] | None = None, bundle: Path | None = None, seed_model: Any = None,
                  variants: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """The whole comparison; returns the JSON-ready result (see README for the keys)."""
    bundle_path, bundle_origin = resolve_bundle(bundle)
    seed_origin = "given"
    if seed_model is None:
        seed_model, seed_origin = load_seed_model()
    kinds = [k for k in FRAME_TYPES if types is None or k.name in types]
    streams = {k.name: build_streams(k, len(bench_frames.scene_photos()) if k.size is None else scenes,
                                     scene_frames if k.size is None else frames) for k in kinds}
    with tempfile.TemporaryDirectory(prefix="maskipy-bench-") as tmp:
        pipelines, skipped = make_pipelines(seed_model, bundle_path, Path(tmp), variants or {})
        first = decode(next(iter(streams.values()))[0][0][0])[0]
        for pipeline in pipelines.values():
            pipeline.warm_up(first)
        tallies = measure(streams, pipelines)
        config = default_config_dict(pipelines["edge"].config)
    reference = haar_reference_ms([decode(s[0][0])[0] for v in streams.values() for s in v])
    return {"benchmark": "edge_pipeline", "machine": machine_info(),
            "settings": {"frames_per_scene": frames, "scenes_per_type": scenes,
                         "frames_per_scene_photo": scene_frames, "match_iou": MATCH_IOU},
            "seed": {"model": seed_origin, "detector": "haar frontalface_default, full resolution, "
                     "scaleFactor 1.1, minNeighbors 5", "classifier": "keras model.predict per face"},
            "edge": {"bundle": str(bundle_path), "bundle_origin": bundle_origin, "config": config},
            "skipped_variants": skipped, "haar_320_reference_ms": reference,
            "frame_types": {k.name: report_type(k, tallies[k.name]) for k in kinds}}


def report_type(kind: FrameType, tallies: dict[str, Tally]) -> dict[str, Any]:
    """One frame type's JSON: seed, edge, ratio, and each variant with its own ratio and recall."""
    labelled = kind.size is not None
    seed, edge = tallies["seed"].summary(labelled), tallies["edge"].summary(labelled)
    out: dict[str, Any] = {"size": list(kind.size) if kind.size else None,
                           "faces_per_frame": kind.faces if labelled else None,
                           "seed": seed, "edge": edge, "speedup_vs_seed": speedup(edge, seed),
                           "speedup_vs_seed_excl_decode": speedup(edge, seed, "fps_excl_decode"),
                           "variants": {}}
    for name, tally in tallies.items():
        if name.startswith("edge["):
            summary = tally.summary(labelled)
            out["variants"][name[5:-1]] = {**summary, "speedup_vs_seed": speedup(summary, seed)}
    return out


def pi_estimate(result: dict[str, Any]) -> dict[str, Any]:
    """Pi 4 frames/s from this machine's stage means, scaled by public Pi 4 references.

    Haar frontalface_default on a 320-px-wide frame ≈ PI4_HAAR_320_MS and int8 MobileNetV2 ≈
    PI4_INT8_FACE_MS per face on a Pi 4; the factors are those over what this machine measured for
    the same work (``haar_reference_ms``; the edge's ms per face), and every other stage, including
    any extra detector work the config adds, scales like that Haar pass. Decode is left out: the Pi
    camera hands over raw frames. A Pi 5 is taken as PI5_OVER_PI4 times faster. An estimate only.
    """
    ref = result["frame_types"].get("640x480_1face")
    if ref is None or not ref["edge"]["faces_found_per_frame"]:
        return {}
    detect_factor = PI4_HAAR_320_MS / result["haar_320_reference_ms"]
    per_face = ref["edge"]["stages_ms"]["classify"]["mean"] / ref["edge"]["faces_found_per_frame"]
    classify_factor = PI4_INT8_FACE_MS / per_face
    out: dict[str, Any] = {"detect_factor": round(detect_factor, 2),
                           "classify_factor": round(classify_factor, 2), "frame_types": {}}
    for name, entry in result["frame_types"].items():
        runs = {"edge": entry["edge"], **{f"edge[{k}]": v for k, v in entry["variants"].items()}}
        out["frame_types"][name] = {who: _pi_fps(r, detect_factor, classify_factor)
                                    for who, r in runs.items()}
    return out


def _pi_fps(run: dict[str, Any], detect_factor: float, classify_factor: float) -> dict[str, float]:
    stages = {s: run["stages_ms"][s]["mean"] for s in STAGES if s != "decode"}
    ms = sum(v * (classify_factor if s == "classify" else detect_factor) for s, v in stages.items())
    return {"pi4_fps": round(1000.0 / ms, 1), "pi5_fps": round(PI5_OVER_PI4 * 1000.0 / ms, 1)}


def bars(result: dict[str, Any], kind: str = "640x480_1face") -> dict[str, Any]:
    """The issue's bar: edge ≥ 10× the seed's frames/s at 640×480 with one face, recall no lower."""
    entry = result["frame_types"].get(kind)
    if entry is None:
        return {}
    seed_recall, edge_recall = entry["seed"]["recall"] or 0.0, entry["edge"]["recall"] or 0.0
    return {"frame_type": kind, "speedup_vs_seed": entry["speedup_vs_seed"], "speedup_bar": 10.0,
            "speedup_ok": (entry["speedup_vs_seed"] or 0) >= 10.0,
            "recall_seed": seed_recall, "recall_edge": edge_recall, "recall_ok": edge_recall >= seed_recall}


def print_report(result: dict[str, Any]) -> None:
    """The per-stage table and the ratios, as printed to the console."""
    rows = []
    for name, entry in result["frame_types"].items():
        for who in ("seed", "edge"):
            r = entry[who]
            rows.append([name, who] + [f"{r['stages_ms'][s]['median']:.1f}/{r['stages_ms'][s]['p90']:.1f}"
                                       for s in STAGES]
                        + [r["fps"], _pct(r["recall"]), r["false_positives_per_frame"] or 0,
                           entry["speedup_vs_seed"] if who == "edge" else ""])
    print(format_table(["frames", "pipeline"] + [f"{s} med/p90" for s in STAGES]
                       + ["fps", "recall", "fp/frame", "speedup"], rows))
    variant_rows = [[name, v, r["fps"], _pct(r["recall"]), r["speedup_vs_seed"]]
                    for name, entry in result["frame_types"].items() for v, r in entry["variants"].items()]
    if variant_rows:
        print("\nedge variants (same frames, same seed run):")
        print(format_table(["frames", "variant", "fps", "recall", "speedup"], variant_rows))
    if result.get("bars"):
        print(f"\nbar: {result['bars']}")
    estimate = result.get("pi_estimate", {}).get("frame_types", {})
    if estimate:
        print("\nestimated Raspberry Pi frames/s (x86 stage means × Pi/x86 factors; see README):")
        print(format_table(["frames", "pipeline", "Pi 4 fps", "Pi 5 fps"],
                           [[name, who, v["pi4_fps"], v["pi5_fps"]] for name, runs in estimate.items()
                            for who, v in runs.items()]))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def parse_option(text: str) -> tuple[str, dict[str, str]]:
    """``--option "every_n_frames=3,detect_width=240"``: keys without a section are [detector] keys.

    A part without ``=`` continues the value before it, so list values read naturally:
    ``"cascades=frontalface_default,frontalface_alt2,every_n_frames=6"``.
    """
    items: list[str] = []
    for part in text.split(","):
        if "=" in part or not items:
            items.append(part)
        else:
            items[-1] += "," + part
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: use key=value, e.g. every_n_frames=3")
        key = key.strip()
        overrides[key if "." in key else f"detector.{key}"] = value.strip()
    return text, overrides


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 frames per scene, 1 scene per type")
    parser.add_argument("--frames", type=int, default=60, help="consecutive frames per composed scene")
    parser.add_argument("--scenes", type=int, default=2, help="composed scenes per frame type")
    parser.add_argument("--types", nargs="*", help="frame types to run (default: all)")
    parser.add_argument("--model", help="int8 bundle directory (default: the shipped default)")
    parser.add_argument("--variants", action="store_true", help="also time the detector options in VARIANTS")
    parser.add_argument("--option", action="append", type=parse_option, default=[],
                        help="also time the edge with these config changes, e.g. every_n_frames=3 "
                             "(repeatable; section.key for other sections)")
    parser.add_argument("--json", default=str(RESULTS / "edge_pipeline.json"), help="where to write JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write the JSON; returns the exit code."""
    args = parse_args(argv)
    if not tensorflow_available():
        print("edge_pipeline: tensorflow not installed: the seed's Keras pipeline cannot run here; "
              "pip install tensorflow (or run on a workstation)", file=sys.stderr)
        return 1
    frames, scenes, photo_frames = (5, 1, 3) if args.quick else (args.frames, args.scenes, 15)
    variants = {**(VARIANTS if args.variants else {}), **dict(args.option)}
    result = run_benchmark(frames=frames, scenes=scenes, scene_frames=photo_frames, types=args.types,
                           bundle=args.model, variants=variants)
    result["bars"] = bars(result)
    result["pi_estimate"] = pi_estimate(result)
    report_and_save(result, "edge_pipeline.py", argv, args.json, print_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
