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
import shutil
import sys
from pathlib import Path

from maskipy.edge.bundle import sha256_file
from maskipy.edge.cli_runner import run_command
from maskipy.edge.errors import MaskipyError

from .framing import measure_framing, write_model_json

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


def measure_yunet_framing(model_dir: Path, data: Path) -> tuple[float, float, float, int]:
    """This YuNet model's framing against Haar's (``framing.measure_framing``), at score 0.5."""
    from maskipy.edge.detectors.yunet import YunetFaceModel, load_yunet_model

    yunet = YunetFaceModel(load_yunet_model(str(model_dir)), 0.5, 0.3)
    return measure_framing(lambda frame: [tuple(face[:4]) for face in yunet.detect(frame, 0)],
                           str(model_dir), data)


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
    return write_model_json(target, meta, data, measure_yunet_framing)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yunet_models", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=Path("../shared/weights/detectors/yunet"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("edge/models/detectors"))
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated names")
    return parser


def import_command(args: argparse.Namespace) -> int:
    """Import each model of MODELS (or --models) from --weights into --out."""
    for name in args.models.split(","):
        import_model(args.weights, name, args.out, args.data)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m maskipy.converters.yunet_models``; returns the exit code."""
    # Weights that are not the upstream release, an unknown --models name (KeyError) or an
    # unreadable path are the user's to fix: one line, exit 1.
    return run_command("yunet_models", build_parser(), import_command, argv,
                       errors=(MaskipyError, OSError, KeyError))


if __name__ == "__main__":
    sys.exit(main())
