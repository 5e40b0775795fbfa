"""Per-face classifier latency: float32 vs int8 TFLite, 1/2/4 threads, per runtime, and Keras."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import (
    bench_main,
    calibration_crops,
    format_table,
    load_seed_model,
    provenance,
    repo_relative,
    resolve_bundle,
    summarize,
    tensorflow_available,
    throwaway_bundle,
)

from maskipy.edge.preprocess import to_input

# (name, module, attribute): the runtimes the edge's fallback chain knows, fastest first.
RUNTIMES = (("ai-edge-litert", "ai_edge_litert.interpreter", "Interpreter"),
            ("tflite-runtime", "tflite_runtime.interpreter", "Interpreter"))
THREADS = (1, 2, 4)
WARM_UP = 10


def time_calls(call: Callable[[], Any], runs: int, warm_up: int = WARM_UP) -> dict[str, float | int]:
    """Median/p90/mean milliseconds of ``runs`` calls after ``warm_up`` untimed ones."""
    for _ in range(warm_up):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append(1000.0 * (time.perf_counter() - start))
    return summarize(samples)


def interpreter_class(module: str, attribute: str) -> Any | None:
    """The runtime's Interpreter class, or None when that runtime is not installed."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError:
        return None


def sized(crop: np.ndarray, size: int) -> np.ndarray:
    """The crop at a model's input size: the seed's models take 224 px crops, the shipped one 160."""
    import cv2

    return crop if crop.shape[0] == size else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def tflite_face_call(cls: Any, model: Path, threads: int, crop: np.ndarray) -> Callable[[], Any]:
    """One face through a bundle's interpreter as the edge does it: quantize, set, invoke, read."""
    interpreter = cls(model_path=str(model / "model.tflite"), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    crop = sized(crop, int(inp["shape"][1]))

    def call() -> Any:
        interpreter.set_tensor(inp["index"], to_input(crop[None], inp["dtype"], scale, int(zero)))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return call


def bench_tflite(models: dict[str, Path], crop: np.ndarray, runs: int) -> list[dict[str, Any]]:
    """Every installed runtime × model × thread count; uninstalled runtimes get one 'not installed' row."""
    rows: list[dict[str, Any]] = []
    for runtime, module, attribute in RUNTIMES:
        cls = interpreter_class(module, attribute)
        if cls is None:
            print(f"{runtime}: not installed")
            rows.append({"runtime": runtime, "status": "not installed"})
            continue
        for kind, path in models.items():
            for threads in THREADS:
                stats = time_calls(tflite_face_call(cls, path, threads, crop), runs)
                rows.append({"runtime": runtime, "model": kind, "threads": threads, "ms": stats})
    return rows


def bench_keras(model: Any, crop: np.ndarray, runs: int) -> list[dict[str, Any]]:
    """The seed's ``model.predict`` on one face, and ``predict_on_batch`` (no per-call data pipeline)."""
    x = to_input(crop[None], np.float32)
    calls = {"predict": lambda: model.predict(x, verbose=0),
             "predict_on_batch": lambda: model.predict_on_batch(x)}
    return [{"runtime": "keras", "model": "float32", "call": name, "threads": "tf default",
             "ms": time_calls(call, runs, warm_up=3)} for name, call in calls.items()]


def paired_ratio(slow: Callable[[], Any], fast: Callable[[], Any], rounds: int,
                 per_round: int) -> dict[str, Any]:
    """Median over rounds of (slow median / fast median), the two timed back to back each round.

    Rows measured minutes apart see different load on a shared machine; alternating in short
    rounds makes the ratio itself robust to that drift.
    """
    ratios = []
    for _ in range(rounds):
        slow_ms = time_calls(slow, per_round, warm_up=1)["median"]
        fast_ms = time_calls(fast, per_round, warm_up=1)["median"]
        ratios.append(slow_ms / fast_ms if fast_ms else 0.0)
    return {"median": round(float(np.median(ratios)), 1), "min": round(min(ratios), 1),
            "max": round(max(ratios), 1), "rounds": rounds, "calls_per_round": per_round}


def bench_shipped(bundle: Path, crop: np.ndarray, runs: int) -> dict[str, Any]:
    """``TFLiteClassifier.classify`` on one face with the default config: what the edge loop pays."""
    from maskipy.edge.bundle import load_bundle
    from maskipy.edge.classifier import build_classifier
    from maskipy.edge.config import load_edge_config

    config = load_edge_config(None)
    loaded = load_bundle(bundle)
    classifier = build_classifier(config.classifier, loaded)
    crop = sized(crop, loaded.crop_spec.size)
    return {"runtime": classifier.runtime, "model": "int8 (shipped path)", "call": "classify", "threads":
            config.classifier.num_threads, "ms": time_calls(lambda: classifier.classify(crop[None]), runs)}


def float_bundle(location: str | None) -> Path | None:
    """A float32 bundle: --float-model, or one converted here from the seed model when TF is present."""
    if location:
        return Path(location)
    return throwaway_bundle("float32") if tensorflow_available() else None


def run_benchmark(*, runs: int = 200, bundle: Path | None = None, float_model: str | None = None,
                  seed_model: Any = None) -> dict[str, Any]:
    """All latency rows and the per-face speedup of int8 TFLite over Keras ``predict``."""
    int8_path, origin = resolve_bundle(bundle)
    models = {"int8": int8_path}
    floats = float_bundle(float_model)
    if floats is not None:
        models["float32"] = floats
    seed_origin = "given"
    if seed_model is None and tensorflow_available():
        seed_model, seed_origin = load_seed_model()
    # The Keras model is a file only when the trainer wrote one; else it is built here (no sha256).
    files = {"keras": seed_origin} if Path(seed_origin).is_absolute() and Path(seed_origin).is_file() else {}
    if floats is not None:
        files["float32"] = floats / "model.tflite"
    record = provenance(int8_path, origin, files)
    crop = calibration_crops(1)[0]
    rows = [*bench_tflite(models, crop, runs), bench_shipped(int8_path, crop, runs)]
    paired = None
    if seed_model is not None:
        rows += bench_keras(seed_model, crop, runs)
        x = to_input(crop[None], np.float32)
        # The first installed runtime: ai-edge-litert here, tflite-runtime on an older Pi image.
        cls = next((c for c in (interpreter_class(m, a) for _, m, a in RUNTIMES) if c is not None), None)
        if cls is not None:
            paired = paired_ratio(lambda: seed_model.predict(x, verbose=0),
                                  tflite_face_call(cls, int8_path, 2, crop),
                                  rounds=max(2, runs // 20), per_round=max(3, runs // 10))
    else:
        print("keras: not installed (tensorflow missing)")
        rows.append({"runtime": "keras", "status": "not installed"})
    return {"benchmark": "classifier", "runs": runs, "warm_up": WARM_UP,
            "models": {k: repo_relative(v) for k, v in models.items()}, "int8_origin": origin,
            "keras_model": repo_relative(seed_origin) if seed_model is not None else None, "rows": rows,
            "speedup": speedups(rows, paired), "provenance": record}


def _median(rows: list[dict[str, Any]], **match: Any) -> float | None:
    for row in rows:
        if "ms" in row and all(row.get(k) == v for k, v in match.items()):
            return row["ms"]["median"]
    return None


def speedups(rows: list[dict[str, Any]], paired: dict[str, Any] | None = None) -> dict[str, Any]:
    """Keras ``predict`` per face over int8 ai-edge-litert at the default 2 threads (bar: ≥ 20×).

    The bar is judged on the alternated (``paired``) ratio when there is one: it is the one a
    change of load during the run cannot skew.
    """
    keras = _median(rows, runtime="keras", call="predict")
    int8 = _median(rows, runtime="ai-edge-litert", model="int8", threads=2)
    on_batch = _median(rows, runtime="keras", call="predict_on_batch")
    ratio = round(keras / int8, 1) if keras and int8 else None
    return {"keras_predict_over_int8": ratio,
            "keras_predict_on_batch_over_int8": round(on_batch / int8, 1) if on_batch and int8 else None,
            "keras_predict_over_int8_paired": paired, "bar": 20.0,
            "ok": (paired["median"] if paired else ratio or 0.0) >= 20.0}


def print_report(result: dict[str, Any]) -> None:
    """The latency table, one row per runtime × model × threads."""
    rows = [[r["runtime"], r.get("model", ""), r.get("call", "invoke" if "ms" in r else ""),
             r.get("threads", ""), r["ms"]["median"], r["ms"]["p90"], r["ms"]["n"]] if "ms" in r
            else [r["runtime"], "-", "-", "-", r["status"], "", ""] for r in result["rows"]]
    print(format_table(["runtime", "model", "call", "threads", "median ms", "p90 ms", "runs"], rows))
    print(f"\nper-face speedup: {result['speedup']}")
    paired = result["speedup"].get("keras_predict_over_int8_paired")
    if paired:
        print(f"Keras predict / int8 (2 threads), alternated in {paired['rounds']} rounds: "
              f"median {paired['median']}× (range {paired['min']}-{paired['max']}×)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="20 runs instead of 200")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per row (after warm-up)")
    parser.add_argument("--model", help="int8 bundle directory (default: the shipped default)")
    parser.add_argument("--float-model", help="float32 bundle directory (default: convert the seed model)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, write JSON; returns the exit code."""
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, lambda a: run_benchmark(
        runs=20 if a.quick else a.runs, bundle=a.model, float_model=a.float_model), print_report, argv)


if __name__ == "__main__":
    sys.exit(main())
