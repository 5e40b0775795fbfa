"""maskipy-convert: the trainer's Keras model → int8 TFLite bundle, checked against the float model."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.cli_runner import run_command
from maskipy.edge.errors import ModelError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskipy-convert", description=__doc__)
    parser.add_argument("--config", default=None, help="INI file with [train] and [convert]")
    parser.add_argument("--model", default=None, help="Keras model (default: [train] output_dir/model.keras)")
    parser.add_argument("--output", default=None, help="bundle directory (default: [convert] output_dir)")
    parser.add_argument("--quantization", default=None, choices=("int8", "uint8", "float32", "float16",
                                                                  "dynamic"))
    return parser


def stratified_indices(labels: list[str], count: int, seed: int) -> np.ndarray:
    """Indices of up to ``count`` items, spread over the classes, so calibration sees every class."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    per = max(1, count // max(1, len(by_label)))
    picked = [i for idx in by_label.values() for i in rng.permutation(idx)[:per]]
    return np.sort(np.array(picked, dtype=np.int64))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from maskipy.trainer.config import load_train_config

    from .config import load_convert_config

    train_config, detector = load_train_config(args.config)
    config = load_convert_config(args.config)
    if args.quantization:
        config = dataclasses.replace(config, quantization=args.quantization)
    if args.output:
        config = dataclasses.replace(config, output_dir=Path(args.output))
    model_path = Path(args.model) if args.model else train_config.output_dir / "model.keras"
    return build_bundle(train_config, detector, config, model_path)


def build_bundle(train_config: Any, detector: Any, config: Any, model_path: Path) -> dict[str, Any]:
    """Convert, check and publish: the bundle replaces ``config.output_dir`` only if its parity holds.

    Returns the parity result (also stored in model.json); ModelError when the model is missing or
    the int8 model strays too far from the float one.
    """
    candidate = convert_candidate(train_config, detector, config, model_path)
    result = check_candidate(candidate, train_config, config)
    publish_candidate(candidate, result, config)
    return result


@dataclasses.dataclass
class Candidate:
    """A converted bundle written beside the target, with what checking it needs."""

    directory: Path
    model: Any  # the float Keras model, the reference the int8 model is checked against
    model_path: Path
    parts: dict[str, Any]  # the trainer's crops: train (calibrated on), val (decision), test (parity)
    tflite: bytes
    start: float  # perf_counter at the start: model.json records the conversion's seconds


def convert_candidate(train_config: Any, detector: Any, config: Any, model_path: Path) -> Candidate:
    """Load the Keras model and the trainer's crops, convert, write the bundle as ``<output>.candidate``."""
    import keras

    from maskipy.trainer.train import crop_spec, prepare_crops

    from .bundle import write_bundle
    from .tflite import convert

    if not model_path.is_file():
        raise ModelError(f"{model_path}: Keras model not found; run maskipy-train first or pass --model")
    training_meta_path = model_path.with_name("metadata.json")
    training_meta = json.loads(training_meta_path.read_text()) if training_meta_path.is_file() else {}
    labels = training_meta.get("labels", list(train_config.labels))
    start = time.perf_counter()
    _, parts, _ = prepare_crops(train_config, detector)
    model = keras.models.load_model(model_path, compile=False)
    calibration_crops = parts["train"].crops[stratified_indices(parts["train"].labels,
                                                         config.representative_samples, train_config.seed)]
    tflite = convert(model, config.quantization, calibration_crops, config.calibration,
                     config.calibration_percentile)
    extra = {"quantization": config.quantization,
             "calibration": {"method": config.calibration, "samples": len(calibration_crops),
                             **({"percentile": config.calibration_percentile}
                                if config.calibration == "percentile" else {})},
             "source": {"keras_model": model_path.name, "keras_sha256": _sha256(model_path),
                        "training": _training_summary(training_meta)},
             "versions": _versions()}
    # Checked beside the target first: a bundle that fails parity never replaces a good one.
    directory = config.output_dir.with_name(config.output_dir.name + ".candidate")
    write_bundle(directory, tflite, labels, crop_spec(train_config).to_dict(), extra)
    return Candidate(directory, model, model_path, parts, tflite, start)


def check_candidate(candidate: Candidate, train_config: Any, config: Any) -> dict[str, Any]:
    """Measure parity on the test crops, sizes, the decision rule and probes; store and print them.

    Returns the parity result; thresholds are enforced by ``publish_candidate``, after the report.
    """
    from . import parity
    from .bundle import update_metadata
    from .probes import add_probes
    from .tflite import convert

    test = candidate.parts["test"]
    keep = (np.arange(len(test.labels)) if not config.parity_samples
            else stratified_indices(test.labels, config.parity_samples, train_config.seed))
    result = parity.check_parity(candidate.model, candidate.directory, test.crops[keep],
                                 [test.labels[i] for i in keep], sources=[test.sources[i] for i in keep])
    sizes = {"keras_bytes": candidate.model_path.stat().st_size, "tflite_bytes": len(candidate.tflite)}
    if config.quantization != "float32":
        sizes["float32_tflite_bytes"] = len(convert(candidate.model, "float32"))
    extra_meta: dict[str, Any] = {}
    if config.decision:
        extra_meta["decision"] = _fit_decision(candidate.directory, candidate.parts["val"], config)
    update_metadata(candidate.directory, parity=result, sizes=sizes, **extra_meta,
                    conversion_seconds=round(time.perf_counter() - candidate.start, 1))
    try:
        print(f"probes: {add_probes(candidate.directory, train_config.data_dir)}")
    except ModelError as exc:  # an older bundle has none either: validation warns, never refuses
        print(f"probes: none added ({exc})")
    print(parity.format_parity(result))
    if "decision" in extra_meta:
        print(_format_decision(extra_meta["decision"]))
    print("sizes: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()))
    return result


def publish_candidate(candidate: Candidate, result: dict[str, Any], config: Any) -> None:
    """Enforce the parity thresholds, then move the candidate into ``config.output_dir``."""
    from . import parity
    from .bundle import publish

    try:
        parity.enforce(result, config.min_agreement, config.max_accuracy_drop)
    except ModelError as exc:
        raise ModelError(f"{exc}; the rejected bundle is in {candidate.directory}, {config.output_dir} "
                         f"is unchanged") from None
    publish(candidate.directory, config.output_dir)
    print(f"bundle: {config.output_dir}")


def _fit_decision(candidate: Path, val: Any, config: Any) -> dict[str, Any]:
    """The decision rule fitted on the validation crops' int8 answers (mined not_face boxes aside)."""
    from maskipy.edge.bundle import load_bundle
    from maskipy.edge.classifier.tflite import TFLiteClassifier

    from .decision import fit_decision

    keep = [i for i, how in enumerate(val.how) if how != "mined"]
    classifier = TFLiteClassifier(load_bundle(candidate), num_threads=2)
    probs = np.concatenate([classifier.scores(np.asarray(val.crops[i])) for i in keep])
    return fit_decision(probs, [val.labels[i] for i in keep], classifier.labels,
                        config.false_alarm_cost, config.missed_improper_cost)


def _format_decision(decision: dict[str, Any]) -> str:
    v = decision["validation"]
    line = (f"decision (validation, {v['crops']} crops): temperature {decision['temperature']}, "
            f"ECE {v['ece_before']:.3f} -> {v['ece_after']:.3f}")
    if "chosen" in v:
        line += (f"; improperly_masked weight {decision['weights']['improperly_masked']}: false alarms "
                 f"{v['argmax']['false_alarm_rate']:.3f} -> {v['chosen']['false_alarm_rate']:.3f}, "
                 f"improper recall {v['argmax']['improper_recall']:.3f} -> "
                 f"{v['chosen']['improper_recall']:.3f}")
    return line


def _sha256(path: Path) -> str:
    from maskipy.edge.bundle import sha256_file

    return sha256_file(path)


def _training_summary(meta: dict[str, Any]) -> dict[str, Any]:
    keep = ("backbone", "data", "test", "timings", "created_at", "detector")
    return {k: meta[k] for k in keep if k in meta}


def _versions() -> dict[str, str]:
    import tensorflow as tf

    versions = {"tensorflow": tf.__version__, "numpy": np.__version__}
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions["ai-edge-litert"] = version("ai-edge-litert")
    except PackageNotFoundError:
        versions["ai-edge-litert"] = "not installed"
    return versions


def convert_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    run(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command("maskipy-convert", build_parser(), convert_command, argv)


if __name__ == "__main__":
    sys.exit(main())
