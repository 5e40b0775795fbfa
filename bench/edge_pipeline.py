"""Seed pipeline vs maskipy's edge loop on the same camera-like frames: frames/s, recall, time to count.

Frames (``bench_frames``): real face photos composed onto REAL, unblurred scene photos (the
``scenes/`` photos scaled to the frame size), as 15 frames/s camera streams in which each placed
face walks in at its own frame. Those photos hold a face or two of their own: recall counts only
the faces we placed, and a box on a photo's own face is neither a hit nor a false positive.
``--backgrounds blurred`` brings back the old defocused backgrounds, which flatter Haar (about
30 ms a frame there against a median of 36-59 ms on real scenes in results/edge_pipeline.json).

Rows, all timed in one run on the same frames so their ratios hold on a busy machine: the seed
(Haar frontalface_default 1.1/5 on every full-resolution frame, Keras predict per face), the edge
as shipped (YuNet detector) and, unless ``--no-variants``, the edge with each of VARIANTS. The time
to count (first frame of a person to the frame the runtime's tracker counts them, in frames / 15)
is measured for every edge row and, on streams of their own, for every_n_frames 1/2/3 x min_votes
2/3 (COUNT_GRID). The Raspberry Pi figures are an estimate from MAC counts (``pi_estimate.py``): the
detector models' (YuNet or SSD) and the classifier's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_frames
from bench_common import (
    bench_main,
    load_seed_model,
    provenance,
    repo_relative,
    resolve_bundle,
    tensorflow_available,
)
from bench_frames import Stream
from bench_pipelines import EdgePipeline, SeedPipeline, default_config_dict, edge_config, haar_reference_ms
from edge_report import print_report
from pi_estimate import model_figures, pi_estimate, yunet_figures
from stream_metrics import MATCH_IOU, STAGES, STREAM_FPS, Tally, match_faces

from maskipy.edge.errors import ConfigError

__all__ = ["STAGES", "bars", "main", "match_faces", "parse_option", "pi_estimate", "run_benchmark"]

HAAR = {"detector.type": "haar"}
SSD = {"detector.type": "ssd"}
# The Haar plug-in's shipped profile and its thorough one (edge/thorough-detector.ini), the SSD
# (BlazeFace, the default before YuNet) and its knobs, each timed against the same seed run
# (``--no-variants`` to skip).
VARIANTS: dict[str, dict[str, str]] = {
    "detector=haar": HAAR,
    "detector=haar,thorough": {**HAAR, "detector.eye_cascades": "eye, lefteye_2splits, righteye_2splits",
                               "detector.closeup_cascades": "frontalface_default, frontalface_alt2"},
    "every_n_frames=1": {"detector.every_n_frames": "1"},
    "every_n_frames=3": {"detector.every_n_frames": "3"},
    "detector=ssd": SSD,
    "detector=ssd,ssd_input_size=256": {**SSD, "detector.ssd_input_size": "256"},
    "detector=yunet-s": {"detector.yunet_model": "yunet-s"},
}
# Detection rate x votes needed: what each does to the time to count (the default detector).
COUNT_GRID: dict[str, dict[str, str]] = {
    f"every_n_frames={n},min_votes={m}": {"detector.every_n_frames": str(n), "tracking.min_votes": str(m)}
    for n in (1, 2, 3) for m in (2, 3)}
# Placed faces appear at frames 0..ENTRY_SPREAD-1 in turn, so every phase of a detect-every-N
# cycle (N <= 3, twice over) meets a newcomer.
ENTRY_SPREAD = 6


@dataclass(frozen=True)
class FrameType:
    """A kind of test frame: composed at ``size`` with ``faces`` faces, or the real scene photos."""

    name: str
    size: tuple[int, int] | None
    faces: int


FRAME_TYPES = tuple([FrameType(f"{w}x{h}_{n}face", (w, h), n) for w, h in ((640, 480), (1280, 720))
                     for n in (0, 1, 4)] + [FrameType("scenes", None, -1)])
# What a run times unless --types says otherwise: the seed takes about a second a frame at
# 1280x720 on a busy 2-core machine, so only one 1280x720 type (--types to add the others).
DEFAULT_TYPES = ("640x480_0face", "640x480_1face", "640x480_4face", "1280x720_1face", "scenes")


def decode(jpeg: bytes) -> tuple[np.ndarray, float]:
    """Decode one JPEG frame; the milliseconds it took."""
    start = time.perf_counter()
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return frame, 1000.0 * (time.perf_counter() - start)


def run_stream(pipeline: Any, stream: Stream, tally: Tally) -> None:
    """Feed one scene's consecutive frames to a pipeline (a fresh camera session) and tally them."""
    pipeline.start_stream()
    for jpeg, truth, _ in stream.frames:
        frame, decode_ms = decode(jpeg)
        ms, found, inferred = pipeline.process(frame)
        tally.add({"decode": decode_ms, **ms}, truth, found, inferred, stream.ignore, pipeline.classified)
    if stream.frames and stream.frames[0][1] is not None and isinstance(pipeline, EdgePipeline):
        tally.counts.add_stream(stream, pipeline.events)


def composed_streams(size: tuple[int, int], faces: int, scenes: int, frames: int, seed: int,
                     backdrop: str, first_background: int = 0) -> list[Stream]:
    """``scenes`` streams of ``faces`` placed faces walking in at staggered frames."""
    rng = np.random.default_rng(seed)
    pool = bench_frames.load_faces(max(1, faces) * scenes, seed=seed + faces)
    streams = []
    for i in range(scenes):
        placed = pool[i * faces:(i + 1) * faces] if faces else []
        enters = [(i * faces + j) % ENTRY_SPREAD for j in range(faces)]
        scene = bench_frames.compose_scene(size, placed, rng, f"{size}_{faces}#{i}",
                                           first_background + i + faces, backdrop, enters)
        streams.append(Stream(list(bench_frames.scene_stream(scene, frames, seed + i)), enters, scene.ignore,
                              [face.label for face in placed]))
    return streams


def build_streams(kind: FrameType, scenes: int, frames: int, seed: int = 0,
                  backdrop: str = "real") -> list[Stream]:
    """The JPEG streams of one frame type, made once and shared by all pipelines."""
    if kind.size is None:
        photos = bench_frames.scene_photos()[:scenes]
        return [Stream(list(bench_frames.photo_stream(p, frames, seed + i)), [], [])
                for i, p in enumerate(photos)]
    return composed_streams(kind.size, kind.faces, scenes, frames, seed, backdrop)


def count_streams(scenes: int, frames: int, backdrop: str = "real") -> list[Stream]:
    """Streams of their own for the time-to-count grid: 640x480, one face and four faces."""
    return (composed_streams((640, 480), 1, scenes, frames, 101, backdrop, first_background=3)
            + composed_streams((640, 480), 4, max(1, scenes // 3), frames, 202, backdrop, first_background=5))


def speedup(edge: dict[str, Any], seed: dict[str, Any], key: str = "fps") -> float | None:
    """Edge frames/s over the seed's, from one run on the same frames."""
    return round(edge[key] / seed[key], 2) if seed[key] else None


def measure(streams_by_type: dict[str, list[Stream]],
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
    """The seed (when given a model), the edge as shipped, the edge with each variant's overrides.

    A variant naming a key this version of the config does not have is skipped with its error, so
    the benchmark still runs against an older or newer edge.
    """
    pipelines: dict[str, Any] = {"seed": SeedPipeline(seed_model)} if seed_model is not None else {}
    pipelines["edge"] = EdgePipeline(edge_config(state / "edge"), bundle)
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


def detector_models(detector: Any) -> list[str]:
    """The ``name@size`` keys of the models a ``[detector]`` config runs (``model_report``'s keys):
    SSD models at their input size, the YuNet model at its long side; none for Haar."""
    if detector.type == "ssd":
        from maskipy.edge.detectors.ssd import load_ssd_model

        return [f"{m}@{detector.ssd_input_size or load_ssd_model(m).input_size}" for m in detector.ssd_models]
    if detector.type == "yunet":
        from maskipy.edge.detectors.yunet import resolve_yunet_model

        return [f"{resolve_yunet_model(detector.yunet_model).name}@{detector.yunet_long_side or 'full'}"]
    return []


def run_setup(pipeline: EdgePipeline) -> dict[str, Any]:
    """What a run's Pi estimate needs to know about its config."""
    d, c, t = pipeline.config.detector, pipeline.config.classifier, pipeline.config.tracking
    return {"detector": d.type, "detector_models": detector_models(d), "detector_threads": d.num_threads,
            "classifier_threads": c.num_threads, "every_n_frames": d.every_n_frames,
            "min_votes": t.min_votes, "vote_frames": t.vote_frames}


def model_report(pipelines: dict[str, Any], bundle: Path) -> dict[str, Any]:
    """sha256, MACs, this machine's invoke ms and the estimated Pi 4 ms of every model the runs use."""
    from maskipy.edge.bundle import load_bundle
    from maskipy.edge.detectors.ssd import load_ssd_model
    from maskipy.edge.detectors.yunet import load_yunet_model

    edges = [p for p in pipelines.values() if isinstance(p, EdgePipeline)]
    ssd = sorted({(m, p.config.detector.ssd_input_size) for p in edges if p.config.detector.type == "ssd"
                  for m in p.config.detector.ssd_models})
    yunet = sorted({(p.config.detector.yunet_model, p.config.detector.yunet_long_side) for p in edges
                    if p.config.detector.type == "yunet"})
    threads = edges[0].config.detector.num_threads
    detectors = {}
    for name, size in ssd:
        model = load_ssd_model(name)
        detectors[f"{name}@{size or model.input_size}"] = {
            **model_figures(str(model.path), threads, input_size=size or model.input_size),
            "trained_input_size": model.input_size, "sha256": model.sha256,
            "licence": model.metadata.get("licence"), "source": model.metadata.get("source")}
    for name, long_side in yunet:
        model = load_yunet_model(name)  # verifies the file against model.json's sha256
        detectors[f"{model.name}@{long_side or 'full'}"] = {
            **yunet_figures(str(model.path.parent), long_side, threads), "sha256": model.sha256,
            "licence": model.metadata.get("licence"), "source": model.metadata.get("source")}
    loaded = load_bundle(bundle)
    classifier = {**model_figures(str(loaded.model_path), edges[0].config.classifier.num_threads),
                  "sha256": loaded.sha256}
    return {"detectors": detectors, "classifier": classifier}




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



def run_benchmark(*, frames: int = 20, scenes: int = 2, scene_frames: int = 10,
                  types: Sequence[str] | None = None, bundle: Path | None = None, seed_model: Any = None,
                  variants: dict[str, dict[str, str]] | None = None, backdrop: str = "real",
                  count_grid: dict[str, dict[str, str]] | None = None, count_scenes: int = 6,
                  count_frames: int = 24) -> dict[str, Any]:
    """The whole comparison; returns the JSON-ready result (see bench/README.md for the keys)."""
    bundle_path, bundle_origin = resolve_bundle(bundle)
    seed_origin = "given"
    if seed_model is None:
        seed_model, seed_origin = load_seed_model()
    seed_file = Path(seed_origin)
    record = provenance(bundle_path, bundle_origin,
                        {"keras": seed_file} if seed_file.is_absolute() and seed_file.is_file() else None)
    kinds = [k for k in FRAME_TYPES if k.name in (types or DEFAULT_TYPES)]
    streams = {k.name: build_streams(k, len(bench_frames.scene_photos()) if k.size is None else scenes,
                                     scene_frames if k.size is None else frames, backdrop=backdrop)
               for k in kinds}
    with tempfile.TemporaryDirectory(prefix="maskipy-bench-") as tmp:
        pipelines, skipped = make_pipelines(seed_model, bundle_path, Path(tmp), variants or {})
        first = decode(next(iter(streams.values()))[0].frames[0][0])[0]
        for pipeline in pipelines.values():
            pipeline.warm_up(first)
        runs = {name: run_setup(p) for name, p in pipelines.items() if isinstance(p, EdgePipeline)}
        models = model_report(pipelines, bundle_path)
        tallies = measure(streams, pipelines)
        config = default_config_dict(pipelines["edge"].config)
        counting = time_to_count(count_grid, count_scenes, count_frames, backdrop, bundle_path, Path(tmp),
                                 first)
    reference = haar_reference_ms([decode(s.frames[0][0])[0] for v in streams.values() for s in v])
    return {"benchmark": "edge_pipeline", "provenance": record,
            "settings": {"frames_per_scene": frames, "scenes_per_type": scenes,
                         "frames_per_scene_photo": scene_frames, "match_iou": MATCH_IOU,
                         "backgrounds": backdrop, "entry_spread_frames": ENTRY_SPREAD,
                         "stream_fps": STREAM_FPS},
            "seed": {"model": seed_origin, "detector": "haar frontalface_default, full resolution, "
                     "scaleFactor 1.1, minNeighbors 5", "classifier": "keras model.predict per face"},
            "edge": {"bundle": repo_relative(Path(bundle_path).resolve()), "bundle_origin": bundle_origin,
                     "config": config},
            "models": models, "runs": runs, "skipped_variants": skipped, "haar_320_reference_ms": reference,
            "background_own_faces": {name: [len(s.ignore) for s in v] for name, v in streams.items()},
            "frame_types": {k.name: report_type(k, tallies[k.name]) for k in kinds},
            "time_to_count": counting}


def time_to_count(grid: dict[str, dict[str, str]] | None, scenes: int, frames: int, backdrop: str,
                  bundle: Path, state: Path, first: np.ndarray) -> dict[str, Any]:
    """The edge with each COUNT_GRID config on streams of their own: time to count, frames/s, recall."""
    if not grid:
        return {}
    streams = count_streams(scenes, frames, backdrop)
    pipelines, skipped = make_pipelines(None, bundle, state / "grid", grid)
    del pipelines["edge"]
    for pipeline in pipelines.values():
        pipeline.warm_up(first)
    tallies = measure({"grid": streams}, pipelines)["grid"]
    shipped = edge_config(state / "shipped")
    return {"streams": {"count": len(streams), "frames": frames, "size": [640, 480],
                        "people": sum(len(s.enters) for s in streams)},
            "shipped_default": f"every_n_frames={shipped.detector.every_n_frames},"
                               f"min_votes={shipped.tracking.min_votes}",
            "skipped": skipped, "configs": {name[5:-1]: tally.summary(True, counts=True)
                                             for name, tally in tallies.items()}}


def report_type(kind: FrameType, tallies: dict[str, Tally]) -> dict[str, Any]:
    """One frame type's JSON: seed, edge, ratio, and each variant with its own ratio and recall."""
    labelled = kind.size is not None
    seed, edge = tallies["seed"].summary(labelled), tallies["edge"].summary(labelled, counts=True)
    out: dict[str, Any] = {"size": list(kind.size) if kind.size else None,
                           "faces_per_frame": kind.faces if labelled else None,
                           "seed": seed, "edge": edge, "speedup_vs_seed": speedup(edge, seed),
                           "speedup_vs_seed_excl_decode": speedup(edge, seed, "fps_excl_decode"),
                           "variants": {}}
    for name, tally in tallies.items():
        if name.startswith("edge["):
            summary = tally.summary(labelled, counts=True)
            out["variants"][name[5:-1]] = {**summary, "speedup_vs_seed": speedup(summary, seed)}
    return out


def bars(result: dict[str, Any], kind: str = "640x480_1face") -> dict[str, Any]:
    """The issue's bars: edge >= 20x the seed's frames/s on real-background streams at recall no lower,
    and a person counted within 0.5 s of appearing at 15 frames/s (the shipped config)."""
    entry = result["frame_types"].get(kind)
    if entry is None:
        return {}
    seed_recall, edge_recall = entry["seed"]["recall"] or 0.0, entry["edge"]["recall"] or 0.0
    out = {"frame_type": kind, "backgrounds": result["settings"]["backgrounds"],
           "speedup_vs_seed": entry["speedup_vs_seed"], "speedup_bar": 20.0,
           "speedup_ok": (entry["speedup_vs_seed"] or 0) >= 20.0, "recall_seed": seed_recall,
           "recall_edge": edge_recall, "recall_ok": edge_recall >= seed_recall}
    # The count goal is judged on the grid's streams (more people) when they ran, else on this type's.
    grid = result.get("time_to_count", {})
    counts = grid.get("configs", {}).get(grid.get("shipped_default", ""), {}).get("time_to_count")
    counts = counts or entry["edge"].get("time_to_count")
    if counts:
        out.update({"count_people": counts["people"], "count_within_goal_share": counts["within_goal_share"],
                    "count_max_s": counts["max_s"], "count_goal_s": counts["goal_s"],
                    "count_ok": counts["within_goal_share"] == 1.0})
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="8 frames per scene, 1 scene per type")
    parser.add_argument("--frames", type=int, default=20, help="consecutive frames per composed scene")
    parser.add_argument("--scenes", type=int, default=2, help="composed scenes per frame type")
    parser.add_argument("--types", nargs="*", choices=[k.name for k in FRAME_TYPES],
                        help=f"frame types to run (default: {' '.join(DEFAULT_TYPES)})")
    parser.add_argument("--model", help="int8 bundle directory (default: the shipped default)")
    parser.add_argument("--backgrounds", choices=bench_frames.BACKDROPS, default="real",
                        help="real (default): unblurred scene photos; blurred: the old defocused ones")
    parser.add_argument("--no-variants", action="store_true", help="skip the edge variants in VARIANTS")
    parser.add_argument("--variants", action="store_true", help="(the default now; kept for old commands)")
    parser.add_argument("--no-count-grid", action="store_true", help="skip the time-to-count grid")
    parser.add_argument("--count-scenes", type=int, default=6, help="one-face streams of the count grid "
                        "(and a third as many four-face ones)")
    parser.add_argument("--option", action="append", type=parse_option, default=[],
                        help="also time the edge with these config changes, e.g. every_n_frames=3 "
                             "(repeatable; section.key for other sections)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The comparison the arguments ask for, with its bars and Pi estimate."""
    frames, scenes, photo_frames = (8, 1, 3) if args.quick else (args.frames, args.scenes, 10)
    count_scenes, count_frames = (3, 12) if args.quick else (args.count_scenes, 24)
    variants = {**({} if args.no_variants else VARIANTS), **dict(args.option)}
    result = run_benchmark(frames=frames, scenes=scenes, scene_frames=photo_frames, types=args.types,
                           bundle=args.model, variants=variants, backdrop=args.backgrounds,
                           count_grid=None if args.no_count_grid else COUNT_GRID,
                           count_scenes=count_scenes, count_frames=count_frames)
    result["bars"] = bars(result)
    result["pi_estimate"] = pi_estimate(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write the JSON; returns the exit code."""
    if not tensorflow_available():
        print("edge_pipeline: tensorflow not installed: the seed's Keras pipeline cannot run here; "
              "pip install tensorflow (or run on a workstation)", file=sys.stderr)
        return 1
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, run, print_report, argv)


if __name__ == "__main__":
    sys.exit(main())
