"""Import the YuNet face-detector models into edge/models/detectors, with metadata and measured framing.

    python -m maskipy.converters.yunet_models --weights ../shared/weights/detectors/yunet \
        --data ../shared/data --out edge/models/detectors

Nothing from ../shared goes into git except what this script writes at run time: each model's
ONNX file (checked against the sha256 of its upstream release), its licence, and a model.json
with the licence, source commit, sha256, the framing that turns its boxes into the Haar
detector's framing (measured on ../shared/data faces where both fired, as for BlazeFace) and the
score threshold and long side chosen for a gate by ``bench/detector_compare.py``.
``make detector-models`` runs this after the BlazeFace import.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from maskipy.edge.bundle import sha256_file
from maskipy.edge.errors import MaskipyError, report_error

# name: (file in ../shared/weights/detectors/yunet, its sha256, licence, licence file, source, about).
MODELS: dict[str, tuple[str, str, str, str, str, str]] = {
    "yunet-n": ("yunet_n_640_640.onnx",
                "25a606a145a5b6d7271ae138fbd00eba91dad8b83222ae3f2c7ecd0f4a7b0e31",
                "Apache-2.0", "LICENSE-yunet-n-apache-2.0",
                "github:ShiqiYu/libfacedetection.train@0047ac24afb1 onnx/yunet_n_640_640.onnx",
                "YuNet-n (the larger, more accurate YuNet), fixed 640x640 export run at any input size"),
    "yunet-s": ("face_detection_yunet_2023mar.onnx",
                "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                "MIT", "LICENSE-yunet-s-mit",
                "github:opencv/opencv_zoo@966be4cb6eef models/face_detection_yunet/"
                "face_detection_yunet_2023mar.onnx "
                "(= ShiqiYu/libfacedetection.train onnx/yunet_s_640_640.onnx)",
                "YuNet-s (OpenCV zoo's face_detection_yunet_2023mar), fixed 640x640 export"),
}
# Chosen on scenes-dev test groups by bench/detector_compare.py (bench/results/detector_compare.json):
# at a 320 px long side only 0.3 keeps properly masked faces >= 48 px found >= 0.96 (yunet-n 0.96 /
# 0.98 / 1.00 P / I / U; 0.5: 0.92 / 0.97 / 1.00), with 0.30 false boxes >= 48 px a photo (0.22 after
# the not_face check; BlazeFace's default 0.34 / 0.20). yunet-s misses more at every score.
DEFAULT_SCORE = {"yunet-n": 0.3, "yunet-s": 0.3}
DEFAULT_LONG_SIDE = 320


def measure_framing(model_dir: Path, data: Path, per_source: int = 150, seed: int = 0
                    ) -> tuple[float, float, float, int]:
    """Median (dx, dy, size factor) from this model's boxes to frontalface_default's, and n.

    The same measure as BlazeFace's (``detector_models.measure_framing``): faces/ and
    realworld-photos images where both detectors found one face with IoU > 0.3.
    """
    import csv

    from maskipy.edge.config import DetectorConfig
    from maskipy.edge.detect import HaarDetector, iou
    from maskipy.edge.preprocess import read_image
    from maskipy.edge.yunet import YunetFaceModel, load_yunet_model

    haar = HaarDetector(replace(DetectorConfig(type="haar"), cascades=("frontalface_default",),
                                eye_cascades=(), calibrate_boxes=False))
    yunet = YunetFaceModel(load_yunet_model(str(model_dir)), 0.5, 0.3)
    with open(data / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(seed)
    shifts: list[tuple[float, float, float]] = []
    for prefix in ("faces/", "realworld-photos/"):
        pool = [r for r in rows if r["path"].startswith(prefix)]
        for index in rng.permutation(len(pool))[:per_source]:
            frame = read_image(str(data / pool[index]["path"]))
            haar_boxes = [d.box for d in haar.detect(frame)]
            faces = yunet.detect(frame, 0)
            if len(haar_boxes) != 1 or len(faces) != 1:
                continue
            x, y, w, h = (float(v) for v in faces[0, :4])
            hx, hy, hw, hh = haar_boxes[0]
            if iou((x, y, w, h), haar_boxes[0]) <= 0.3:
                continue
            shifts.append(((hx + hw / 2 - (x + w / 2)) / w, (hy + hh / 2 - (y + h / 2)) / w, hw / w))
    if len(shifts) < 20:
        raise MaskipyError(f"{model_dir}: only {len(shifts)} faces found by both detectors; check --data")
    dx, dy, factor = np.median(np.asarray(shifts), axis=0)
    return round(float(dx), 3), round(float(dy), 3), round(float(factor), 3), len(shifts)


def import_model(weights: Path, name: str, out: Path, data: Path) -> dict:
    """Write ``out/name`` (model.onnx, model.json, LICENSE) from ``weights``; returns model.json."""
    member, expected, licence, licence_file, source, about = MODELS[name]
    if sha256_file(weights / member) != expected:
        raise MaskipyError(f"{weights / member}: sha256 differs from the upstream release's {expected[:12]}…")
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights / member, target / "model.onnx")
    header = (f"YuNet face detection model ({name}), by Shiqi Yu et al., licensed under the {licence} "
              f"licence below.\nSource: {source}\nCopied unchanged.\n\n")
    (target / "LICENSE").write_text(header + (weights / licence_file).read_text(encoding="utf-8"),
                                    encoding="utf-8")
    meta = {"name": name, "about": about, "architecture": "YuNet (cv2.FaceDetectorYN, OpenCV >= 4.8)",
            "licence": licence, "source": source, "upstream": "ShiqiYu/libfacedetection.train",
            "landmarks": ["right_eye", "left_eye", "nose_tip", "right_mouth_corner", "left_mouth_corner"],
            "framing": [0.0, 0.0, 1.0], "default_score": DEFAULT_SCORE[name],
            "default_long_side": DEFAULT_LONG_SIDE,
            "defaults_chosen_by": "bench/detector_compare.py on scenes-dev test groups "
                                  "(bench/results/detector_compare.json)",
            "sha256": sha256_file(target / "model.onnx")}
    (target / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    dx, dy, factor, n = measure_framing(target, data)
    meta["framing"] = [dx, dy, factor]
    meta["framing_measured_on"] = f"{n} faces of ../shared/data (faces/, realworld-photos/) found by both"
    (target / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    """Import each model of MODELS (or --models) from --weights into --out."""
    parser = argparse.ArgumentParser(prog="yunet_models", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("../shared/weights/detectors/yunet"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("edge/models/detectors"))
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    args = parser.parse_args(argv)
    try:
        for name in args.models.split(","):
            meta = import_model(args.weights, name, args.out, args.data)
            print(f"{name}: sha256 {meta['sha256'][:12]}…, framing {meta['framing']} "
                  f"({meta['framing_measured_on']})")
    except (MaskipyError, OSError, KeyError) as exc:
        return report_error("yunet_models", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
