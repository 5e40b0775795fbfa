"""int8 calibration methods side by side: how often the int8 model's answer differs from the float one.

    python bench/quantization.py [--config converters/default-model.ini] [--draws 3]
        [--percentiles 99.99,99.999] [--samples 300]

For each calibration draw (a different stratified pick of training crops) the recipe's Keras model
is converted with TFLite's min/max ranges and with percentile-clipped ranges, and every bundle is
compared with the float model on the validation and test crops (unseen identities) through the
edge's own classifier. Flips are counted per source: real photos hold most near-ties.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import REPO, bench_main, format_table, provenance, repo_relative

from maskipy.converters import parity
from maskipy.converters.bundle import write_bundle
from maskipy.converters.cli import stratified_indices
from maskipy.converters.tflite import convert


def run(config_path: Path, draws: int, percentiles: list[float], samples: int) -> dict:
    import keras

    from maskipy.trainer.config import load_train_config
    from maskipy.trainer.train import crop_spec, prepare_crops

    config, detector = load_train_config(config_path)
    _, parts, _ = prepare_crops(config, detector)
    model_path = config.output_dir / "model.keras"
    record = provenance(files={"keras": model_path})
    model = keras.models.load_model(model_path, compile=False)
    held = [parts["val"], parts["test"]]
    crops = np.concatenate([p.crops for p in held])
    labels = [label for p in held for label in p.labels]
    sources = [source for p in held for source in p.sources]
    float_probs = parity.float_answers(model, crops)
    methods = [("minmax", 100.0)] + [("percentile", p) for p in percentiles]
    rows = []
    with tempfile.TemporaryDirectory(prefix="maskipy-quant-bench-") as tmp:
        for draw in range(draws):
            calibration = parts["train"].crops[stratified_indices(parts["train"].labels, samples, draw)]
            for method, percentile in methods:
                start = time.perf_counter()
                flatbuffer = convert(model, "int8", calibration, method, percentile)
                seconds = time.perf_counter() - start
                bundle = write_bundle(Path(tmp) / f"{method}-{percentile}-{draw}", flatbuffer,
                                      list(config.labels), crop_spec(config).to_dict(), {})
                result = parity.check_parity(model, bundle, crops, labels, sources=sources,
                                             float_probs=float_probs)
                rows.append({"method": method, "percentile": percentile, "draw": draw,
                             "flips": round((1 - result["agreement"]) * result["n"]),
                             "agreement": result["agreement"],
                             "accuracy_delta": result["accuracy_delta"],
                             "per_source": result["per_source"], "convert_s": round(seconds, 1)})
                print(f"draw {draw} {method} {percentile}: agreement {result['agreement']:.4f}",
                      flush=True)
    return {"model": repo_relative(model_path.resolve()), "crops": len(crops),
            "calibration_samples": samples, "rows": rows, "provenance": record}


def print_report(result: dict) -> None:
    sources = sorted(result["rows"][0]["per_source"])
    headers = ["method", "draw", "flips", "agreement", "Δacc", *[f"agree {s}" for s in sources],
               "convert s"]
    rows = [[r["method"] if r["method"] == "minmax" else f"p{r['percentile']}", r["draw"], r["flips"],
             f"{r['agreement']:.4f}", f"{r['accuracy_delta']:+.4f}",
             *[f"{r['per_source'][s]['agreement']:.4f}" for s in sources], r["convert_s"]]
            for r in result["rows"]]
    print(f"\nint8 vs float on {result['crops']} validation + test crops, "
          f"{result['calibration_samples']} calibration crops per draw")
    print(format_table(headers, rows))
    by_method: dict[str, list[int]] = {}
    for r in result["rows"]:
        by_method.setdefault(f"{r['method']} {r['percentile']}", []).append(r["flips"])
    for name, flips in by_method.items():
        print(f"{name}: flips {flips}, mean {np.mean(flips):.1f}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(REPO / "converters" / "default-model.ini"))
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--percentiles", default="99.99,99.999")
    parser.add_argument("--samples", type=int, default=300)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__file__, __doc__, add_arguments, lambda a: run(
        Path(a.config), a.draws, [float(p) for p in a.percentiles.split(",") if p], a.samples),
        print_report, argv)


if __name__ == "__main__":
    sys.exit(main())
