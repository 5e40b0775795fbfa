"""Face detectors side by side on the scenes-dev test groups: found by class and width, close-ups,
false boxes before and after the not_face check, ms per 640x480 frame, MACs and a Pi 4 / Pi 5 estimate.

    python bench/detector_compare.py [--data ../shared/data] [--configs a,b] [--json OUT]

What is measured, per configuration (every one in one run, on the same photos):

* Photos: the scenes-dev photos whose ``group`` falls in the trainer's test split (seed 0, test
  fraction 0.15: ``trainer.data.grouped_split``'s rule), as they are (long side <= 640 px).
* found: an annotated face is found by a box whose centre lies inside it and whose width is 0.5-2x
  its width, matched greedily one-to-one (largest faces first, strongest box first). By class and
  by annotated width: < 24, 24-48, 48-100, >= 100 px. ``+v``: the same after the bundle's
  classifier dropped the boxes it calls not_face, as the edge does (found and kept).
* close-ups: each test face >= 100 px wide, its photo scaled so the face is 300-450 px wide
  (seeded), cut to a 640x480 frame around it (edges repeated where the photo ends): someone at
  the gate. Found as above, only that face looked for.
* false boxes a photo: boxes matching no annotated face (an upper bound: some are unannotated real
  faces), all and >= 48 px wide, before and after the not_face check.
* ms: median detect() time over --timing-frames test photos resized to 640x480, each timed twice,
  2 threads (OpenCV and TFLite), every configuration in this one run.
* MACs per 640x480 frame (YuNet: OpenCV DNN's FLOPs / 2 at the scaled input; TFLite models:
  ``model_macs``), and a Pi 4 / Pi 5 ESTIMATE from them with ``pi_estimate``'s public figures:
  float MACs at FLOAT_OVER_INT8 x the int8 MobileNetV2 rate; Haar scaled by this machine's Haar
  reference pass. Not a Pi measurement.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import DATA, bench_main, format_table, provenance, resolve_bundle
from bench_pipelines import haar_reference_ms
from model_macs import model_macs, yunet_mmacs
from pi_estimate import (
    FLOAT_OVER_INT8,
    PI4_HAAR_320_MS,
    PI4_INT8_MMAC_PER_MS,
    PI5_OVER_PI4,
    PI_THREAD_SLOWDOWN,
    classifier_pi4_ms,
)

from maskipy.edge.config import DetectorConfig
from maskipy.edge.detectors import Detection, build_detector
from maskipy.edge.detectors.ssd import resolve_detector_model
from maskipy.edge.geometry import apply_framing, clip_box, nms

CLASSES = ("properly_masked", "improperly_masked", "unmasked")
BINS = ((0, 24, "<24"), (24, 48, "24-48"), (48, 100, "48-100"), (100, 100_000, ">=100"))
FRAME = (480, 640)
SEED = 0
TEST_FRACTION = 0.15  # trainer [train] test_fraction's default, as converters/default-model.ini uses
AIZOO = DATA.parent / "weights" / "detectors" / "aizoo-face-mask"
# AIZOO boxes are about 0.96x an annotated face's width; YuNet's (also tight) framing factor to
# Haar's was measured at 1.22: the same factor is used so its crops are not framed tighter than
# the classifier expects (not measured for AIZOO itself: it is a bench row, not a plug-in).
AIZOO_FRAMING = (0.0, 0.0, 1.22)


def size_bin(width: float) -> str:
    return next(name for low, high, name in BINS if low <= width < high)


def yunet(model: str, long_side: int, score: float, min_face: int = 8) -> DetectorConfig:
    return DetectorConfig(type="yunet", yunet_model=model, yunet_long_side=long_side, yunet_min_score=score,
                          min_face=min_face)


HAAR = DetectorConfig(type="haar")
THOROUGH = replace(HAAR, eye_cascades=("eye", "lefteye_2splits", "righteye_2splits"),
                   closeup_cascades=("frontalface_default", "frontalface_alt2"))  # edge/thorough-detector.ini
SSD = DetectorConfig(type="ssd", min_face=48)  # edge/blazeface-detector.ini
CONFIGS: dict[str, DetectorConfig | str] = {
    "yunet-n@320/0.3 floor44 (default)": DetectorConfig(),  # the shipped [detector] defaults
    "yunet-n@320/0.3 floor48": yunet("yunet-n", 320, 0.3, min_face=48),  # the default before
    "yunet-n@320/0.3 floor16 (hall)": yunet("yunet-n", 320, 0.3, min_face=16),  # edge/hall-detector.ini
    "yunet-n@320/0.3 floor24": yunet("yunet-n", 320, 0.3, min_face=24),  # the hall profile before
    # The gate default at larger long sides: what finding more properly masked faces >= 48 px costs.
    **{f"yunet-n@{side}/0.3 floor44": yunet("yunet-n", side, 0.3, min_face=44) for side in (384, 448)},
    **{f"yunet-{m}@{'320' if side else 'full'}/{s}": yunet(f"yunet-{m}", side, s)
       for m in ("n", "s") for side in (320, 0) for s in (0.3, 0.5, 0.7)},
    "blazeface@256 floor48": replace(SSD, ssd_input_size=256),
    "blazeface@320 floor48": SSD,
    "blazeface@256 nofloor": replace(SSD, ssd_input_size=256, min_face=8),
    "blazeface@320 nofloor": replace(SSD, min_face=8),
    "aizoo@260/0.5": "aizoo",
    "haar default": HAAR,
    "haar thorough": THOROUGH,
}


class AizooDetector:
    """The AIZOO face-mask SSD (float TFLite from ../shared), decoded as its repository does; a bench
    row only (see the module docstring and ../shared/weights/detectors/aizoo-face-mask/README.md)."""

    def __init__(self, score: float = 0.5, iou: float = 0.4, threads: int = 2) -> None:
        from maskipy.edge.classifier.interpreter import load_interpreter_class

        interpreter_class, _ = load_interpreter_class()
        self.interpreter = interpreter_class(model_path=str(AIZOO / "face_mask_detection.tflite"),
                                             num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        self.loc = next(o["index"] for o in outputs if int(o["shape"][-1]) == 4)
        self.cls = next(o["index"] for o in outputs if int(o["shape"][-1]) == 2)
        self.score, self.iou = score, iou
        sizes = [[0.04, 0.056], [0.08, 0.11], [0.16, 0.22], [0.32, 0.45], [0.64, 0.72]]
        anchors = []
        for cells, (s0, s1) in zip((33, 17, 9, 5, 3), sizes, strict=True):
            shapes = [(s0, s0), (s1, s1), (s0 * np.sqrt(0.62), s0 / np.sqrt(0.62)),
                      (s0 * np.sqrt(0.42), s0 / np.sqrt(0.42))]
            for i in range(cells):
                for j in range(cells):
                    for w, h in shapes:
                        anchors.append(((j + 0.5) / cells, (i + 0.5) / cells, w, h))
        self.anchors = np.asarray(anchors, np.float32)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        h, w = frame.shape[:2]
        rgb = cv2.cvtColor(cv2.resize(frame, (260, 260), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        self.interpreter.set_tensor(self.input["index"], (rgb.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        loc = self.interpreter.get_tensor(self.loc)[0]
        scores = self.interpreter.get_tensor(self.cls)[0].max(axis=1)
        keep = np.flatnonzero(scores > self.score)
        if not keep.size:
            return []
        a, raw = self.anchors[keep], loc[keep]
        cx, cy = a[:, 0] + raw[:, 0] * 0.1 * a[:, 2], a[:, 1] + raw[:, 1] * 0.1 * a[:, 3]
        bw, bh = a[:, 2] * np.exp(raw[:, 2] * 0.2), a[:, 3] * np.exp(raw[:, 3] * 0.2)
        boxes = np.stack([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], axis=1)
        found = []
        for i in nms(boxes, scores[keep], self.iou):
            x0, y0, x1, y1 = boxes[i]
            clipped = clip_box(apply_framing((x0, y0, x1 - x0, y1 - y0), AIZOO_FRAMING), frame.shape)
            if clipped is not None and clipped[2] >= 8:
                found.append(Detection(clipped, float(scores[keep][i]), "aizoo"))
        return found


def build(config: DetectorConfig | str) -> Any:
    return AizooDetector() if config == "aizoo" else build_detector(config)


def test_photos(data: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(path, annotated faces) of every scenes-dev photo in the test groups, in path order."""
    from maskipy.trainer.data import _unit

    photos: dict[str, list[dict[str, Any]]] = {}
    with open(data / "scenes-dev" / "boxes.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if _unit(row["group"], SEED) < TEST_FRACTION:
                photos.setdefault(row["path"], []).append(
                    {"label": row["label"], "box": tuple(int(row[k]) for k in "xywh")})
    return sorted(photos.items())


def closeups(data: Path, photos: list[tuple[str, list[dict[str, Any]]]]
             ) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """640x480 frames each holding one test face scaled to 300-450 px wide (see the docstring)."""
    rng = np.random.default_rng(SEED)
    out = []
    for path, faces in photos:
        for face in faces:
            x, y, w, h = face["box"]
            if w < 100:
                continue
            image = cv2.imread(str(data / path))
            scale = rng.uniform(300, 450) / w
            big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            cx, cy = (x + w / 2) * scale, (y + h / 2) * scale
            # The face centre lands near the middle of the frame, as at a gate.
            ox = int(round(cx - rng.uniform(0.35, 0.65) * FRAME[1]))
            oy = int(round(cy - rng.uniform(0.35, 0.6) * FRAME[0]))
            pad = max(0, -ox, -oy, ox + FRAME[1] - big.shape[1], oy + FRAME[0] - big.shape[0])
            if pad:
                big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            frame = big[oy + pad:oy + pad + FRAME[0], ox + pad:ox + pad + FRAME[1]].copy()
            box = (int(round(x * scale - ox)), int(round(y * scale - oy)), int(round(w * scale)),
                   int(round(h * scale)))
            out.append((frame, {"label": face["label"], "box": box}))
    return out


def match(faces: list[dict[str, Any]], detections: list[Detection]) -> tuple[list[bool], list[Detection]]:
    """Whether each face was found, and the boxes matching no face (greedy one-to-one)."""
    used: set[int] = set()
    hits = [False] * len(faces)
    order = sorted(range(len(faces)), key=lambda i: -faces[i]["box"][2])
    ranked = sorted(range(len(detections)), key=lambda j: -detections[j].score)
    for i in order:
        fx, fy, fw, fh = faces[i]["box"]
        for j in ranked:
            if j in used:
                continue
            x, y, w, h = detections[j].box
            cx, cy = x + w / 2, y + h / 2
            if fx <= cx <= fx + fw and fy <= cy <= fy + fh and 0.5 * fw <= w <= 2 * fw:
                used.add(j)
                hits[i] = True
                break
    return hits, [d for j, d in enumerate(detections) if j not in used]


class Verifier:
    """The edge's not_face check, with each (frame, box) classified once across configurations."""

    def __init__(self, bundle_dir: Path) -> None:
        from maskipy.edge.bundle import load_bundle
        from maskipy.edge.classifier.tflite import TFLiteClassifier
        from maskipy.edge.config import ClassifierConfig

        self.bundle = load_bundle(bundle_dir)
        self.classifier = TFLiteClassifier(self.bundle, num_threads=2)
        self.reject = ClassifierConfig().reject_label
        self.cache: dict[tuple[str, tuple], bool] = {}

    def keep(self, key: str, frame: np.ndarray, detections: list[Detection]) -> list[Detection]:
        from maskipy.edge.runtime import crop_faces, to_observations

        todo = [d for d in detections if (key, d.box) not in self.cache]
        if todo:
            boxes, crops = crop_faces(frame, todo, self.bundle)
            labels = {o.box: o.label for o in to_observations(
                boxes, self.classifier.classify(crops), self.bundle.labels, self.classifier.choose)} \
                if boxes else {}
            for d in todo:
                self.cache[(key, d.box)] = labels.get(d.box, self.reject) != self.reject
        return [d for d in detections if self.cache[(key, d.box)]]


def rate(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def evaluate(config: DetectorConfig | str, photos: list, frames: dict[str, np.ndarray], close: list,
             timing: list[np.ndarray], verifier: Verifier) -> dict[str, Any]:
    """One configuration's numbers (see the module docstring)."""
    detector = build(config)
    hits: dict[str, list[bool]] = {}
    false = {"": [], "+v": []}
    false48 = {"": [], "+v": []}
    for path, faces in photos:
        frame = frames[path]
        detections = detector.detect(frame)
        for suffix, kept in (("", detections), ("+v", verifier.keep(path, frame, detections))):
            found, unmatched = match(faces, kept)
            for face, hit in zip(faces, found, strict=True):
                width = size_bin(face["box"][2])
                hits.setdefault(f"{face['label']}/{width}{suffix}", []).append(hit)
                hits.setdefault(f"all/{width}{suffix}", []).append(hit)
                if face["box"][2] >= 48:
                    hits.setdefault(f"{face['label']}/>=48{suffix}", []).append(hit)
            false[suffix].append(len(unmatched))
            false48[suffix].append(sum(d.box[2] >= 48 for d in unmatched))
    for index, (frame, face) in enumerate(close):
        detections = detector.detect(frame)
        for suffix, kept in (("", detections), ("+v", verifier.keep(f"close{index}", frame, detections))):
            found, _ = match([face], kept)
            hits.setdefault(f"closeup/{face['label']}{suffix}", []).append(found[0])
            hits.setdefault(f"closeup/all{suffix}", []).append(found[0])
    samples = []
    detector.detect(timing[0])
    for _ in range(2):
        for frame in timing:
            start = time.perf_counter()
            detector.detect(frame)
            samples.append(1000.0 * (time.perf_counter() - start))
    result: dict[str, Any] = {key: rate(value) for key, value in sorted(hits.items())}
    result["n"] = {key: len(value) for key, value in sorted(hits.items()) if not key.endswith("+v")}
    for suffix in ("", "+v"):
        result[f"false_per_photo{suffix}"] = round(float(np.mean(false[suffix])), 3)
        result[f"false48_per_photo{suffix}"] = round(float(np.mean(false48[suffix])), 3)
    result["ms_640x480"] = round(statistics.median(samples), 2)
    return result


def cost(name: str, config: DetectorConfig | str, x86_ms: float, cpu_factor: float) -> dict[str, Any]:
    """MMACs per 640x480 frame and the Pi 4 / Pi 5 detect estimate (2 and 4 threads)."""
    if config == "aizoo":
        mmacs = model_macs(AIZOO / "face_mask_detection.tflite")["mmacs"]
    elif isinstance(config, DetectorConfig) and config.type == "yunet":
        mmacs = yunet_mmacs(config.yunet_model, config.yunet_long_side)
    elif isinstance(config, DetectorConfig) and config.type == "ssd":
        path = resolve_detector_model(config.ssd_models[0]) / "model.tflite"
        mmacs = model_macs(path, config.ssd_input_size)["mmacs"]
    else:
        pi4 = {t: round(x86_ms * cpu_factor, 1) for t in (2, 4)}
        pi5 = {t: round(v / PI5_OVER_PI4, 1) for t, v in pi4.items()}
        return {"mmacs": None, "pi4_ms": pi4, "pi5_ms": pi5, "basis": "x86 ms x Pi4/x86 Haar reference ratio"}
    pi4 = {t: round(mmacs / PI4_INT8_MMAC_PER_MS * FLOAT_OVER_INT8 * PI_THREAD_SLOWDOWN[t], 1)
           for t in (2, 4)}
    pi5 = {t: round(v / PI5_OVER_PI4, 1) for t, v in pi4.items()}
    return {"mmacs": mmacs, "pi4_ms": pi4, "pi5_ms": pi5,
            "basis": "float MACs / Pi 4 int8 rate x FLOAT_OVER_INT8 x thread slowdown (model only)"}


ROWS: list[tuple[str, str]] = [
    ("P>=48", "properly_masked/>=48"), ("I>=48", "improperly_masked/>=48"), ("U>=48", "unmasked/>=48"),
    ("P24-48", "properly_masked/24-48"), ("I24-48", "improperly_masked/24-48"),
    ("U24-48", "unmasked/24-48"), ("all<24", "all/<24"), ("all48-100", "all/48-100"),
    ("all>=100", "all/>=100"), ("close", "closeup/all"),
]


def print_tables(results: dict[str, dict[str, Any]]) -> None:
    for suffix, title in (("", "found (before the not_face check)"),
                          ("+v", "found and kept (after the not_face check)")):
        print(f"\n{title}")
        headers = ["config", *[short for short, _ in ROWS], "false/ph", "false>=48/ph", "ms", "MMAC",
                   "pi4 ms 2t/4t"]
        rows = []
        for name, r in results.items():
            c = r["cost"]
            rows.append([name, *[r.get(key + suffix) if r.get(key + suffix) is not None else "-"
                                 for _, key in ROWS],
                         r[f"false_per_photo{suffix}"], r[f"false48_per_photo{suffix}"], r["ms_640x480"],
                         c["mmacs"] if c["mmacs"] is not None else "-",
                         f"{c['pi4_ms'][2]}/{c['pi4_ms'][4]}"])
        print(format_table(headers, rows))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--configs", default="", help="comma-separated names from CONFIGS (default: all)")
    parser.add_argument("--timing-frames", type=int, default=30)
    parser.add_argument("--limit", type=int, default=0, help="first N test photos only (a smoke run)")
    parser.add_argument("--verify", type=Path, default=None, metavar="BUNDLE",
                        help="the bundle whose classifier does the not_face check (default: the shipped one)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every config of ``--configs`` on the test photos, close-ups and timing frames, in one run."""
    cv2.setNumThreads(2)
    names = [n for n in args.configs.split(",") if n] or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"detector_compare: error: unknown config {unknown}; known: {', '.join(CONFIGS)}")
    bundle, origin = resolve_bundle(args.verify)
    record = provenance(bundle, origin)
    verifier = Verifier(bundle)
    photos = test_photos(args.data)
    photos = photos[:args.limit] if args.limit else photos
    frames = {path: cv2.imread(str(args.data / path)) for path, _ in photos}
    close = closeups(args.data, photos)
    step = max(1, len(photos) // args.timing_frames)
    timing = [cv2.resize(frames[path], (FRAME[1], FRAME[0]), interpolation=cv2.INTER_AREA)
              for path, _ in photos[::step][:args.timing_frames]]
    reference = haar_reference_ms(timing)
    cpu_factor = PI4_HAAR_320_MS / reference
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        t0 = time.perf_counter()
        results[name] = evaluate(CONFIGS[name], photos, frames, close, timing, verifier)
        results[name]["cost"] = cost(name, CONFIGS[name], results[name]["ms_640x480"], cpu_factor)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    classifier_pi4 = classifier_pi4_ms(model_macs(bundle / "model.tflite"))
    return {"benchmark": "detector_compare", "seed": SEED, "test_fraction": TEST_FRACTION,
            "photos": len(photos), "faces": sum(len(f) for _, f in photos), "closeups": len(close),
            "timing_frames": len(timing), "haar_320_reference_ms": reference, "cpu_factor": cpu_factor,
            "classifier_pi4_ms_estimate": classifier_pi4, "verified_with": str(bundle), "results": results,
            "configs": {n: dataclasses.asdict(CONFIGS[n]) if isinstance(CONFIGS[n], DetectorConfig)
                        else {"aizoo": str(AIZOO / "face_mask_detection.tflite"), "score": 0.5, "iou": 0.4,
                              "framing": AIZOO_FRAMING} for n in names},
            "wall_s": round(time.perf_counter() - started, 1), "provenance": record}


def print_report(result: dict[str, Any]) -> None:
    print_tables(result["results"])
    pi4 = result["classifier_pi4_ms_estimate"]
    print(f"\nPi 4 classifier estimate (the bundle's int8 MobileNetV2, one face): {pi4[2]} ms at "
          f"2 threads, {pi4[4]} ms at 4; Haar reference here {result['haar_320_reference_ms']} ms "
          f"(cpu factor {result['cpu_factor']:.2f})")


def main(argv: list[str] | None = None) -> int:
    return bench_main(__file__, __doc__, add_arguments, run, print_report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
