"""Face-detector recall, false positives and speed for several [detector] configurations, side by side.

    python bench/detector_recall.py [--data ../shared/data] [--per-class N] [--verify BUNDLE] [--json OUT]

What is measured, per configuration:

* ``faces/`` per class: the image is used as it is (320 or 250 px); found = a box whose centre lies
  in the middle half of the image and that is at least 15% of its width (the face fills the frame).
* ``realworld-photos`` per class, in context: each crop (face box + 20% margin) with a face at least
  48 px wide is scaled so its face is 32-200 px wide (never more than 1.5x its native size) and
  pasted, with a feathered edge, at a random spot (at least 24 px from the border) of one of the
  ``scenes/`` photos at 640x480, unblurred: real clutter, as a camera sees it (Haar costs 2-3x more
  on it than on a blurred background). Found = a box whose centre lies in the true face box and
  whose width is 0.5-2x the face's; reported per class and per face-width bin (<48, 48-100, >=100 px).
  The scene's own faces are not looked for.
* ``realworld-video/not_face``: the 64 px detector false positives pasted the same way (as if face
  crops); the rate is the share of them that still yield a box overlapping the pasted crop.
* ``scenes/``: the 10 uncropped photos scaled to 640 px wide (a camera frame); a false positive is a
  box beyond the number of faces counted by eye in that photo (SCENE_FACES).
* ms per 640x480 frame: mean detect() time over the composed real-scene frames, 2 threads
  (OpenCV and TFLite), as the edge runs.

Everything is drawn from one seeded generator, so two runs give the same images and numbers.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import DATA, bench_main, provenance, repo_relative

from maskipy.edge.config import DetectorConfig
from maskipy.edge.detectors import Detection, build_detector
from maskipy.edge.geometry import iou

CLASSES = ("improperly_masked", "properly_masked", "unmasked")
FRAME = (480, 640)
SEED = 0
MARGIN = 0.2

# Faces counted by eye in each scenes/ photo. with_mask/test3 has the barber's customer and, behind
# him at the right edge, a masked hairdresser whose face is partly cut by the frame.
SCENE_FACES = {
    "scenes/improper/test1.jpg": 1, "scenes/improper/test2.jpg": 1, "scenes/improper/test3.jpg": 1,
    "scenes/with_mask/test1.jpg": 1, "scenes/with_mask/test2.jpg": 1, "scenes/with_mask/test3.jpg": 2,
    "scenes/with_mask/test4.jpg": 1, "scenes/with_mask/test5.jpg": 1,
    "scenes/without_mask/test1.jpg": 1, "scenes/without_mask/test2.jpg": 1,
}

# The seed's detector as a config: one frontal cascade, minNeighbors 5, plain equalisation. Every
# option is spelled out, so the comparison does not move when DetectorConfig's defaults change.
# The Haar detector as shipped (type = haar); the default detector is YuNet.
HAAR = DetectorConfig(type="haar")
BASE = replace(HAAR, cascades=("frontalface_default",), min_neighbors=5, clahe=False,
               border=0.0, eye_cascades=(), calibrate_boxes=False, scale_factor=1.1,
               detect_width=320, eye_detect_width=0, every_n_frames=1, closeup_cascades=())
MN2 = replace(BASE, min_neighbors=2, clahe=True)
EYES = replace(MN2, eye_cascades=("eye",), calibrate_boxes=True)
THOROUGH_EYES = ("eye", "lefteye_2splits", "righteye_2splits")
THOROUGH_CLOSEUP = ("frontalface_default", "frontalface_alt2")
THOROUGH = replace(HAAR, eye_cascades=THOROUGH_EYES, closeup_cascades=THOROUGH_CLOSEUP)
SSD = DetectorConfig(type="ssd")
# The configurations compared; the first (the seed's detector) is the baseline of the cost ratio.
CONFIGS: dict[str, DetectorConfig] = {
    "seed_haar": BASE,
    "haar_default": HAAR,
    # edge/thorough-detector.ini
    "haar_thorough": THOROUGH,
    # The shipped default: YuNet-n on a 320 px long side, score 0.3.
    "yunet_default": DetectorConfig(),
    # The SSD as it was shipped before YuNet: blazeface-back at 320 px input, score 0.3.
    "ssd_default": SSD,
    # Each model at the input size it was trained at (back 256, short 128, full 192).
    "ssd_back_256": replace(SSD, ssd_input_size=0),
    "ssd_short_128": replace(SSD, ssd_models=("blazeface-short",), ssd_input_size=0),
    "ssd_full_192": replace(SSD, ssd_models=("blazeface-full",), ssd_input_size=0),
    "ssd_back_256+short_128": replace(SSD, ssd_models=("blazeface-back", "blazeface-short"),
                                      ssd_input_size=0),
    "ssd_back_384": replace(SSD, ssd_input_size=384),
    "ssd_back_448": replace(SSD, ssd_input_size=448),
    "ssd_default_score0.5": replace(SSD, min_score=0.5),
    "ssd_default_score0.2": replace(SSD, min_score=0.2),
}
# Face-width bins of the composed real faces, in frame pixels.
SIZE_BINS = ((0, 48, "<48"), (48, 100, "48-100"), (100, 10_000, ">=100"))


def size_bin(width: float) -> str:
    """The SIZE_BINS name of a face ``width`` px wide."""
    return next(name for low, high, name in SIZE_BINS if low <= width < high)


@dataclass
class Sample:
    """One test image: the frame the detector sees and what counts as finding it."""

    kind: str
    label: str
    frame: np.ndarray
    face: tuple[int, int, int, int] | None = None
    faces_by_eye: int = 0


def read_manifest(data: Path) -> list[dict[str, str]]:
    """The manifest's rows."""
    with open(data / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def pick(rows: list[dict[str, str]], rng: np.random.Generator, n: int) -> list[dict[str, str]]:
    """``n`` rows drawn without replacement, in a seeded order."""
    index = rng.permutation(len(rows))[:n]
    return [rows[i] for i in sorted(index)]


def compose(crop: np.ndarray, face_width: float, rng: np.random.Generator, background: np.ndarray
            ) -> tuple[np.ndarray, tuple]:
    """Paste a box+20% crop into ``background`` (640x480) so its face is ``face_width`` px wide;
    returns the frame and the face box."""
    scale = face_width * (1 + 2 * MARGIN) / crop.shape[1]
    size = (max(2, int(round(crop.shape[1] * scale))), max(2, int(round(crop.shape[0] * scale))))
    size = (min(size[0], FRAME[1] - 48), min(size[1], FRAME[0] - 48))
    patch = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0 = int(rng.integers(24, FRAME[1] - size[0] - 24 + 1))
    y0 = int(rng.integers(24, FRAME[0] - size[1] - 24 + 1))
    # A feathered alpha: a hard rectangle edge is a strong Haar feature that real photos lack.
    alpha = np.zeros((size[1], size[0]), np.float32)
    edge = max(2, size[0] // 12)
    alpha[edge:-edge, edge:-edge] = 1.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), edge / 2.0)[..., None]
    frame = background.astype(np.float32)
    region = frame[y0:y0 + size[1], x0:x0 + size[0]]
    frame[y0:y0 + size[1], x0:x0 + size[0]] = alpha * patch + (1 - alpha) * region
    fw, fh = size[0] / (1 + 2 * MARGIN), size[1] / (1 + 2 * MARGIN)
    face = (int(x0 + size[0] * MARGIN / (1 + 2 * MARGIN)), int(y0 + size[1] * MARGIN / (1 + 2 * MARGIN)),
            int(fw), int(fh))
    return frame.astype(np.uint8), face


def scene_backgrounds(data: Path) -> list[np.ndarray]:
    """The scenes/ photos at 640x480, unblurred: real clutter, as a camera sees it (their own faces
    are not counted: only the face pasted into a frame is looked for)."""
    return [cv2.resize(cv2.imread(str(data / path)), (FRAME[1], FRAME[0]), interpolation=cv2.INTER_AREA)
            for path in SCENE_FACES]


def load_samples(data: Path, per_class: int) -> list[Sample]:
    """The seeded sample: faces/, real faces and not_face crops on real scenes, and the 10 scenes."""
    rng = np.random.default_rng(SEED)
    rows = read_manifest(data)
    backgrounds = scene_backgrounds(data)
    samples: list[Sample] = []
    for label in CLASSES:
        for row in pick([r for r in rows if r["path"].startswith(f"faces/{label}/")], rng, per_class):
            samples.append(Sample("faces", label, cv2.imread(str(data / row["path"]))))
    for label in CLASSES:
        real = [r for r in rows if r["path"].startswith(f"realworld-photos/{label}/")
                and int(r["width"]) / (1 + 2 * MARGIN) >= 48]
        for row in pick(real, rng, per_class):
            native = int(row["width"]) / (1 + 2 * MARGIN)
            width = rng.uniform(32, min(200.0, max(33.0, native * 1.5)))
            frame, face = compose(cv2.imread(str(data / row["path"])), width, rng,
                                  backgrounds[int(rng.integers(len(backgrounds)))])
            samples.append(Sample("real", label, frame, face))
    for row in pick([r for r in rows if r["path"].startswith("realworld-video/not_face/")], rng, per_class):
        frame, face = compose(cv2.imread(str(data / row["path"])), rng.uniform(56, 100), rng,
                              backgrounds[int(rng.integers(len(backgrounds)))])
        samples.append(Sample("not_face", "not_face", frame, face))
    for path, count in SCENE_FACES.items():
        image = cv2.imread(str(data / path))
        image = cv2.resize(image, (640, int(round(image.shape[0] * 640 / image.shape[1]))),
                           interpolation=cv2.INTER_LINEAR)
        samples.append(Sample("scenes", path, image, faces_by_eye=count))
    return samples


def found(sample: Sample, detections: list[Detection]) -> bool:
    """Whether ``detections`` count as finding ``sample``'s face (see the module docstring)."""
    h, w = sample.frame.shape[:2]
    for d in detections:
        x, y, bw, bh = d.box
        cx, cy = x + bw / 2, y + bh / 2
        if sample.kind == "faces":
            if w / 4 <= cx <= 3 * w / 4 and h / 4 <= cy <= 3 * h / 4 and bw >= 0.15 * w:
                return True
        elif sample.kind == "real":
            fx, fy, fw, fh = sample.face
            if fx <= cx <= fx + fw and fy <= cy <= fy + fh and 0.5 * fw <= bw <= 2 * fw:
                return True
        elif sample.kind == "not_face" and iou(d.box, sample.face) > 0:
            return True
    return False


class Verifier:
    """The edge's second look at each box: the bundle's classifier drops boxes it calls not_face."""

    def __init__(self, bundle_dir: Path) -> None:
        from maskipy.edge.bundle import load_bundle
        from maskipy.edge.classifier.tflite import TFLiteClassifier
        from maskipy.edge.config import ClassifierConfig

        self.bundle = load_bundle(bundle_dir)
        self.classifier = TFLiteClassifier(self.bundle, num_threads=1)
        self.reject_label = ClassifierConfig().reject_label

    def keep(self, frame: np.ndarray, detections: list[Detection]) -> list[Detection]:
        from maskipy.edge.pipeline import crop_faces, to_observations

        boxes, crops = crop_faces(frame, detections, self.bundle)
        if not boxes:
            return []
        observations = to_observations(boxes, self.classifier.classify(crops), self.bundle.labels,
                                       self.classifier.choose)
        kept = {o.box for o in observations if o.label != self.reject_label}
        return [d for d in detections if d.box in kept]


def evaluate(config: DetectorConfig, samples: Iterable[Sample], verifier: Verifier | None = None
             ) -> dict[str, float]:
    """One configuration's rates, false positives and speed over ``samples``; with ``verifier``
    also the same rates after the classifier dropped the boxes it calls not_face (suffix ``+v``)."""
    detector = build_detector(config)
    hits: dict[str, list[bool]] = {}
    fps: dict[str, list[int]] = {}
    times: list[float] = []
    for sample in samples:
        start = time.perf_counter()
        detections = detector.detect(sample.frame)
        elapsed = time.perf_counter() - start
        views = {"": detections}
        if verifier is not None:
            views["+v"] = verifier.keep(sample.frame, detections)
        for suffix, kept in views.items():
            if sample.kind == "scenes":
                fps.setdefault(suffix, []).append(max(0, len(kept) - sample.faces_by_eye))
            else:
                hit = found(sample, kept)
                hits.setdefault(f"{sample.kind}/{sample.label}{suffix}", []).append(hit)
                if sample.kind == "real":
                    hits.setdefault(f"real/{sample.label}/{size_bin(sample.face[2])}{suffix}", []).append(hit)
                    hits.setdefault(f"real/{size_bin(sample.face[2])}{suffix}", []).append(hit)
        if sample.kind != "scenes" and sample.frame.shape[:2] == FRAME:
            times.append(elapsed)
    result = {key: float(np.mean(value)) for key, value in sorted(hits.items())}
    for suffix, counts in fps.items():
        result[f"scenes/fp_per_photo{suffix}"] = float(np.mean(counts))
    result["ms_per_640x480"] = 1000.0 * float(np.mean(times))
    return result


COLUMNS = [("faces/improperly_masked", "fc.imp"), ("faces/properly_masked", "fc.pro"),
           ("faces/unmasked", "fc.unm"), ("real/improperly_masked", "rw.imp"),
           ("real/properly_masked", "rw.pro"), ("real/unmasked", "rw.unm"),
           ("real/<48", "rw<48"), ("real/48-100", "rw48+"), ("real/>=100", "rw100+"),
           ("scenes/fp_per_photo", "FP/ph"), ("not_face/not_face", "notface"), ("ms_per_640x480", "ms")]


def print_table(results: dict[str, dict[str, float]]) -> None:
    """The results, one configuration a row; a second table after not_face verification."""
    width = max(len(name) for name in results)
    print(f"{'config':<{width}} " + " ".join(f"{short:>7}" for _, short in COLUMNS) + "    x")
    base = next(iter(results.values()))["ms_per_640x480"]
    for name, result in results.items():
        cells = " ".join(f"{result.get(key, float('nan')):7.2f}" if key != "ms_per_640x480"
                         else f"{result[key]:7.1f}" for key, _ in COLUMNS)
        print(f"{name:<{width}} {cells} {result['ms_per_640x480'] / base:4.1f}")
    if not any("scenes/fp_per_photo+v" in result for result in results.values()):
        return
    print("\nafter the classifier drops boxes it calls not_face (what the edge counts):")
    verified = [(key + "+v", short) for key, short in COLUMNS if key != "ms_per_640x480"]
    print(f"{'config':<{width}} " + " ".join(f"{short:>7}" for _, short in verified))
    for name, result in results.items():
        print(f"{name:<{width}} " + " ".join(f"{result.get(key, float('nan')):7.2f}"
                                             for key, _ in verified))


def config_names(text: str) -> list[str]:
    """``--configs a,b``: names from CONFIGS (empty: all of them)."""
    names = [n for n in text.split(",") if n] or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown config {unknown}; known: {', '.join(CONFIGS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--per-class", type=int, default=50,
                        help="images per class and set (7 x N + 10 images in all; keep it <= 55 on a "
                             "shared machine)")
    parser.add_argument("--configs", type=config_names, default=list(CONFIGS),
                        help="comma-separated names from CONFIGS (default: all)")
    parser.add_argument("--verify", type=Path, default=None, metavar="BUNDLE",
                        help="also count boxes after this bundle's not_face check, as the edge does")


def run(args: argparse.Namespace) -> dict:
    """Every configuration in ``args.configs`` on one seeded sample."""
    cv2.setNumThreads(2)  # as the edge runs: OpenCV and the TFLite detector both get 2 threads
    # Only --verify loads a classifier; without it the provenance names none.
    record = provenance(args.verify, "given") if args.verify else provenance()
    samples = load_samples(args.data, args.per_class)
    verifier = Verifier(args.verify) if args.verify else None
    results = {name: evaluate(CONFIGS[name], samples, verifier) for name in args.configs}
    return {"seed": SEED, "per_class": args.per_class, "scene_faces": SCENE_FACES,
            "verified_with": repo_relative(args.verify.resolve()) if args.verify else None,
            "results": results,
            "configs": {name: dataclasses.asdict(CONFIGS[name]) for name in args.configs},
            "provenance": record}


def main(argv: list[str] | None = None) -> int:
    """Run every configuration in CONFIGS (or --configs) on one seeded sample; print and save."""
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, run,
                      lambda result: print_table(result["results"]), argv)


if __name__ == "__main__":
    raise SystemExit(main())
