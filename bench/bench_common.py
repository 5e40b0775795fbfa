"""Shared helpers of the bench scripts: models, bundles, statistics, tables and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
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


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How to rerun this bench script with these arguments (recorded in its JSON)."""
    return " ".join(["python", f"bench/{script}", *(argv or sys.argv[1:])])


def report_and_save(result: dict[str, Any], script: str, argv: Sequence[str] | None,
                    json_path: str | Path, print_report: Any) -> Path:
    """Record the command line, print the report, write the JSON: the end of every bench script."""
    result["command"] = command_line(script, argv)
    result.setdefault("provenance", provenance())
    print_report(result)
    path = write_json(json_path, result)
    print(f"\nwrote {path}")
    return path


def provenance() -> dict[str, Any]:
    """The commit and the models a result was measured with (README numbers quote these files).

    ``commit`` ends in ``+dirty`` when code (edge, trainer, converters, bench) had uncommitted
    changes; ``models`` maps the
    shipped classifier bundle and each bundled detector model to its sha256.
    """
    import subprocess

    from maskipy.edge.bundle import DEFAULT_BUNDLE, MODEL_FILE, sha256_file
    from maskipy.edge.ssd import DETECTOR_MODELS

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        # Only code that can change a measurement counts: not results, docs or the README.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "edge",
                                "trainer", "converters", "bench", ":!bench/results"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    models = {"classifier:default": sha256_file(DEFAULT_BUNDLE / MODEL_FILE)}
    for path in sorted([*DETECTOR_MODELS.glob("*/model.tflite"), *DETECTOR_MODELS.glob("*/model.onnx")]):
        models[f"detector:{path.parent.name}"] = sha256_file(path)
    return {"commit": commit, "models": models}


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
            return keras.models.load_model(path, compile=False), str(path)
    return build_seed_model(), "seed architecture, ImageNet backbone (no trainer model in runs/)"


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
