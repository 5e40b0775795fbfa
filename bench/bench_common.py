"""Shared helpers of the bench scripts: bench_main, provenance, models, bundles, statistics, tables, JSON."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# TensorFlow's C++ start-up chatter would bury the tables; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
# The trainer's Keras float model, where the issue said and where the trainer actually writes it.
SEED_KERAS = (REPO / "runs" / "model" / "model.keras", REPO / "runs" / "default-model" / "model.keras")
RESULTS = REPO / "bench" / "results"
# Where a throwaway bundle is built when the shipped default is missing; outside the repo on purpose.
SCRATCH = Path(os.environ.get("MASKIPY_BENCH_CACHE", "/tmp/maskipy-bench"))
LABELS = ("properly_masked", "improperly_masked", "unmasked", "not_face")
CROP = {"margin": 0.2, "size": 224, "interpolation": "auto", "colour_order": "rgb"}


def summarize(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """Median, p90, mean and count of a list of milliseconds (zeros when empty)."""
    if not samples_ms:
        return {"median": 0.0, "p90": 0.0, "mean": 0.0, "n": 0}
    ordered = sorted(samples_ms)
    # Nearest-rank p90: no interpolation, so a value reported is one that was measured.
    p90 = ordered[min(len(ordered) - 1, int(np.ceil(0.9 * len(ordered))) - 1)]
    return {"median": round(statistics.median(ordered), 3), "p90": round(p90, 3),
            "mean": round(statistics.fmean(ordered), 3), "n": len(ordered)}


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path


def git_commit(root: Path = REPO) -> tuple[str, bool]:
    """The checked-out commit and whether code that can change a measurement has uncommitted changes.

    Only edge, trainer, converters and bench (not its results) count: a result or README edit does
    not make a measurement dirty. Outside a git checkout: ``("unknown", False)``.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "edge", "trainer",
                    "converters", "bench", ":!bench/results")
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return commit, bool(dirty)


def repo_relative(value: str | Path) -> str:
    """An absolute path as seen from the repository root (``../shared/...`` beside it); else unchanged."""
    text = str(value)
    if not os.path.isabs(text):
        return text
    path = Path(os.path.normpath(text))
    for base in (REPO, REPO.parent):
        if path.is_relative_to(base):
            return os.path.relpath(path, REPO)
    return text


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How to rerun this bench script with these arguments, paths relative to the repository root."""
    args = []
    for arg in argv if argv is not None else sys.argv[1:]:
        key, sep, value = arg.partition("=")
        args.append(f"{key}={repo_relative(value)}" if sep and key.startswith("--") else repo_relative(arg))
    return " ".join(["python", f"bench/{script}", *args])


def provenance(bundle: str | Path | None = None, origin: str = "",
               files: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """The commit, machine and models a result was measured with (README numbers quote these files).

    ``bundle`` is the classifier bundle the bench actually loaded (``origin`` says how it was chosen),
    ``files`` any other model file it read (e.g. a Keras model); every shipped detector model is
    listed too. Call it where the bench resolves its models, before measuring.
    """
    from maskipy.edge.bundle import load_bundle, sha256_file
    from maskipy.edge.detectors.base import DETECTOR_MODELS

    commit, dirty = git_commit()
    models: dict[str, dict[str, str]] = {}
    if bundle is not None:
        models["classifier"] = {"path": repo_relative(Path(bundle).resolve()), "origin": origin,
                                "sha256": load_bundle(bundle).sha256}
    for name, path in (files or {}).items():
        models[name] = {"path": repo_relative(Path(path).resolve()), "sha256": sha256_file(Path(path))}
    for path in sorted([*DETECTOR_MODELS.glob("*/model.tflite"), *DETECTOR_MODELS.glob("*/model.onnx")]):
        models[f"detector:{path.parent.name}"] = {"path": repo_relative(path), "sha256": sha256_file(path)}
    return {"commit": commit, "dirty": dirty, "date": datetime.datetime.now().astimezone().isoformat(
        timespec="seconds"), "machine": machine_info(), "models": models}


def report_and_save(result: dict[str, Any], script: str, argv: Sequence[str] | None,
                    json_path: str | Path, print_report: Callable[[dict[str, Any]], None]) -> Path:
    """Record the command line (``command``, beside ``provenance``), print the report, write the JSON.

    Raises ValueError when ``result`` has no provenance: a result that cannot say what it measured
    is not written.
    """
    record = result.get("provenance")
    if not isinstance(record, dict) or not record.get("commit") or "models" not in record:
        raise ValueError(f"{script}: the result has no provenance (commit and models); call "
                         f"bench_common.provenance() with the bundle the bench loaded")
    result["command"] = command_line(script, argv)
    print_report(result)
    path = write_json(json_path, result)
    print(f"\nwrote {repo_relative(path.resolve())}")
    return path


def bench_main(script: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
               run: Callable[[argparse.Namespace], dict[str, Any]],
               print_report: Callable[[dict[str, Any]], None], argv: Sequence[str] | None = None,
               exit_code: Callable[[dict[str, Any]], int] | None = None) -> int:
    """Every bench script's main: its arguments plus ``--json``, run, print, write; the exit code.

    ``script`` is the script's ``__file__``; ``run`` returns the result with its ``provenance()``.
    """
    name = Path(script).stem
    parser = argparse.ArgumentParser(prog=name, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--json", type=Path, default=RESULTS / f"{name}.json",
                        help=f"where to write the JSON (default: bench/results/{name}.json)")
    args = parser.parse_args(argv)
    result = run(args)
    report_and_save(result, f"{name}.py", argv, args.json, print_report)
    return exit_code(result) if exit_code else 0


def machine_info() -> dict[str, Any]:
    """What ran the benchmark: CPU, cores, Python and library versions (numbers mean nothing without it)."""
    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor() or "",
                            "cpus": os.cpu_count(), "python": sys.version.split()[0],
                            "platform": platform.platform()}
    model = Path("/proc/device-tree/model")
    if model.is_file():
        info["board"] = model.read_text(errors="replace").strip("\x00\n")
    try:
        import cv2

        info["opencv"] = cv2.__version__
    except ImportError:
        info["opencv"] = None
    return info


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported (the seed's Keras model needs it; a Pi usually lacks it)."""
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def build_seed_model(weights: Path | None = WEIGHTS) -> Any:
    """The seed's Keras float model, built by the trainer: MobileNetV2-224 + MaxPool(7) → Flatten →
    128 → 128 → 4 softmax. Head weights do not matter for speed; the backbone gets the shared
    ImageNet weights when present so activations (and int8 calibration ranges) look like a real model's.
    """
    from maskipy.trainer.model import assemble, build_feature_extractor, build_head

    use = str(weights) if weights is not None and Path(weights).is_file() else "none"
    features = build_feature_extractor(224, use)
    return assemble(features, build_head(int(features.output_shape[-1]), len(LABELS)))


def load_seed_model() -> tuple[Any, str]:
    """The trainer's Keras model if it exists, else the seed architecture; and which one it is."""
    import keras

    for path in SEED_KERAS:
        if path.is_file():
            model = keras.models.load_model(path, compile=False)
            # The seed ran 224 px crops; a trainer model at another size (the default recipe's 160)
            # is not the seed's cost, so the seed architecture stands in for it.
            if tuple(model.input_shape[1:3]) == (CROP["size"], CROP["size"]):
                return model, str(path)
    return build_seed_model(), "seed architecture, ImageNet backbone (no 224 px trainer model in runs/)"


def calibration_crops(count: int = 32) -> np.ndarray:
    """Real face crops (uint8 RGB, 224²) from realworld-photos, cut by the edge's crop contract."""
    from maskipy.edge.preprocess import CropSpec, crop_face, read_image, whole_image_box

    spec = CropSpec(**CROP)
    paths = sorted((DATA / "realworld-photos").rglob("*.jpg"))[:: 37][:count]
    crops = []
    for path in paths:
        image = read_image(str(path))
        crops.append(crop_face(image, whole_image_box(image.shape, spec.margin), spec))
    if not crops:
        # Without the shared data, noise still gives the converter ranges to work with.
        return np.random.default_rng(0).integers(0, 256, (count, 224, 224, 3), dtype=np.uint8)
    return np.stack(crops)


def throwaway_bundle(kind: str = "int8") -> Path:
    """A cached bench-only bundle (``int8`` or ``float32``) of the seed architecture, built once."""
    directory = SCRATCH / f"bundle-{kind}"
    if (directory / "model.json").is_file():
        return directory
    from maskipy.converters.bundle import write_bundle
    from maskipy.converters.tflite import convert

    model, origin = load_seed_model()
    flatbuffer = convert(model, kind, calibration_crops() if kind == "int8" else None)
    return write_bundle(directory, flatbuffer, list(LABELS), dict(CROP),
                        {"note": f"bench throwaway {kind} model from {origin}"})


def resolve_bundle(location: str | Path | None = None) -> tuple[Path, str]:
    """The int8 bundle to benchmark and where it came from: --model, the shipped default, or a throwaway."""
    from maskipy.edge.bundle import DEFAULT_BUNDLE, MODEL_FILE

    if location:
        return Path(location), "given"
    if (DEFAULT_BUNDLE / MODEL_FILE).is_file():
        return DEFAULT_BUNDLE, "default"
    if not tensorflow_available():
        raise SystemExit(f"{DEFAULT_BUNDLE} has no model and TensorFlow is not installed to build a "
                         f"throwaway one; pass --model BUNDLE_DIR")
    return throwaway_bundle("int8"), "throwaway (default bundle missing)"
