"""Add probe crops (labels checked by meaning) to a bundle: ``python -m maskipy.converters.probes DIR``.

maskipy-convert does this for every new bundle; this script is for bundles made before probes
existed (the shipped default was given its probes this way). model.tflite is untouched.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maskipy.edge.bundle import load_bundle
from maskipy.edge.classifier.probes import candidate_images, check_probes, make_probes
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.cli_runner import run_command
from maskipy.edge.errors import ModelError

from .bundle import update_metadata

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def add_probes(directory: Path, data_dir: Path) -> str:
    """Write probes.npz for ``directory`` from the photos under ``data_dir``; a one-line summary."""
    bundle = load_bundle(directory)
    classifier = TFLiteClassifier(bundle, num_threads=1)
    entry = make_probes(bundle.directory, bundle, classifier, candidate_images(data_dir, bundle.labels))
    if entry is None:
        raise ModelError(f"{data_dir}: no probe candidate the model labels right with confidence; "
                         f"is the data there (realworld-2class/)?")
    update_metadata(bundle.directory, probes=entry)
    return check_probes(classifier, load_bundle(directory))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m maskipy.converters.probes", description=__doc__)
    parser.add_argument("directory", type=Path, help="bundle directory (model.tflite + model.json)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"the shared data folder (default {DEFAULT_DATA})")
    return parser


def probes_command(args: argparse.Namespace) -> int:
    print(f"{args.directory}: {add_probes(args.directory, args.data)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m maskipy.converters.probes DIR``; returns the exit code."""
    return run_command("probes", build_parser(), probes_command, argv)


if __name__ == "__main__":
    sys.exit(main())
