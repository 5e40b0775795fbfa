"""maskipy-eval: score a model bundle on any folder-per-class data set through the exact edge path."""

from __future__ import annotations

import argparse
import logging
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.bundle import load_bundle
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.cli_runner import run_command
from maskipy.edge.config import DetectorConfig, load_edge_config
from maskipy.edge.detectors import build_detector
from maskipy.edge.errors import ConfigError, ImageError
from maskipy.edge.geometry import iou
from maskipy.edge.preprocess import Box, crop_face, whole_image_box
from maskipy.edge.sources.imagecheck import read_image_checked

from . import report
from .data import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

# Smaller than this is no face crop at all (a 2x38 px image once crashed a whole evaluation).
MIN_IMAGE_SIDE = 8


def parse_label_map(items: list[str]) -> dict[str, str]:
    """``with_mask=properly_masked,improperly_masked`` → {predicted label: data-set label}."""
    mapping: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--label-map {item!r}: write DATASET_LABEL=MODEL_LABEL[,MODEL_LABEL...]")
        target, sources = item.split("=", 1)
        for source in filter(None, (s.strip() for s in sources.split(","))):
            mapping[source] = target.strip()
    return mapping


def list_images(data_dir: Path) -> list[tuple[Path, str]]:
    """(image, class) for every image in ``data_dir/<class>/``."""
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir}: not a folder; give a folder with one sub-folder per class")
    items = [(path, class_dir.name) for class_dir in sorted(p for p in data_dir.iterdir() if p.is_dir())
             for path in sorted(class_dir.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise ConfigError(f"{data_dir}: no images in class sub-folders (e.g. {data_dir}/unmasked/*.jpg)")
    return items


def voc_boxes(image_path: Path) -> list[Box] | None:
    """Face boxes from a VOC-style .xml beside the image, if there is one; ConfigError if malformed."""
    xml = image_path.with_suffix(".xml")
    if not xml.is_file():
        return None
    boxes = []
    try:
        for obj in ET.parse(xml).getroot().iter("bndbox"):
            x0, y0, x1, y1 = (int(float(obj.findtext(k, "0"))) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((x0, y0, x1 - x0, y1 - y0))
    except (ET.ParseError, ValueError, OverflowError, OSError) as exc:
        raise ConfigError(f"{xml}: not a valid VOC annotation ({exc}); fix or remove it") from None
    return boxes


@dataclass(frozen=True)
class Prediction:
    """One image's answer: the chosen label (None: no face found), its probabilities, the face width."""

    label: str | None
    probs: np.ndarray | None
    face_width: int


class Evaluator:
    """Crops images like the edge (detected face, or the whole image as a crop) and classifies them."""

    def __init__(self, bundle_dir: str, detector: DetectorConfig | None, crop_margin: float) -> None:
        self.bundle = load_bundle(bundle_dir)
        self.classifier = TFLiteClassifier(self.bundle, num_threads=2)
        self.detector = build_detector(detector) if detector is not None else None
        self.crop_margin = crop_margin
        self.reset_detection()

    def reset_detection(self) -> None:
        """Start counting detections afresh (each ``evaluate`` reports only its own images)."""
        self.detection = {"images": 0, "found": 0, "boxes_labelled": 0, "boxes_found": 0}

    def predict(self, path: Path) -> Prediction:
        """The model's answer for the image's face (label None when detection found no face)."""
        image = read_image_checked(path)
        if min(image.shape[:2]) < MIN_IMAGE_SIDE:
            raise ImageError(f"{path}: {image.shape[1]}x{image.shape[0]} px is too small to hold a face")
        if self.detector is None:
            box = whole_image_box(image.shape, self.crop_margin)
        else:
            found = self.detector.detect(image)
            self._score_detection(path, [d.box for d in found])
            if not found:
                return Prediction(None, None, 0)
            box = max(found, key=lambda d: d.box[2] * d.box[3]).box
        probs = self.classifier.classify(crop_face(image, box, self.bundle.crop_spec))
        return Prediction(self.bundle.labels[int(self.classifier.choose(probs)[0])], probs[0], box[2])

    def _score_detection(self, path: Path, boxes: list[Box]) -> None:
        self.detection["images"] += 1
        self.detection["found"] += bool(boxes)
        truth = voc_boxes(path)
        if truth:
            self.detection["boxes_labelled"] += len(truth)
            self.detection["boxes_found"] += sum(any(iou(t, b) >= 0.3 for b in boxes) for t in truth)


def evaluate(evaluator: Evaluator, images: list[tuple[Path, str]], mapping: dict[str, str]
             ) -> dict[str, Any]:
    from tqdm import tqdm

    true, pred, skipped, answers = [], [], [], []
    evaluator.reset_detection()
    for path, label in tqdm(images, desc="evaluate", unit="img"):
        try:
            predicted = evaluator.predict(path)
        except ConfigError:  # a malformed annotation is the data set's to fix, not a skip
            raise
        except (ImageError, ValueError) as exc:  # ValueError: a face box outside a tiny frame
            log.debug("skipping %s: %s", path, exc)
            skipped.append(str(path))
            continue
        true.append(label)
        answers.append(predicted)
        pred.append("no_face" if predicted.label is None else mapping.get(predicted.label, predicted.label))
    if skipped:
        log.warning("skipped %d of %d images that could not be read, were too large or too small "
                    "(listed under 'skipped' in --json; first: %s)", len(skipped), len(images), skipped[0])
    if not true:
        raise ImageError(f"none of the {len(images)} images could be evaluated; first: {skipped[0]}")
    labels = sorted(set(true)) + sorted(set(pred) - set(true))
    result = report.metrics(true, pred, labels)
    result["skipped"] = skipped
    result.update(report.false_alarms(true, [a.label for a in answers], [a.face_width for a in answers]))
    result.update(report.calibration(true, answers, evaluator.bundle.labels))
    if evaluator.detector is not None:
        det = evaluator.detection
        result["detection"] = {"image_rate": round(det["found"] / max(1, det["images"]), 4), **det}
        if det["boxes_labelled"]:
            result["detection"]["recall"] = round(det["boxes_found"] / det["boxes_labelled"], 4)
    return result


def check_writable(path: Path) -> None:
    """ConfigError unless ``path`` can be written (its folder is made if missing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        existed = path.exists()
        with open(path, "a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the results there ({exc.strerror or exc}); "
                          f"pick another --json/--png path") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskipy-eval", description=__doc__)
    parser.add_argument("model", help="bundle directory (model.tflite + model.json)")
    parser.add_argument("data_dir", type=Path, help="folder with one sub-folder of images per class")
    parser.add_argument("--label-map", nargs="*", default=[], metavar="DATA=MODEL[,MODEL]",
                        help="e.g. with_mask=properly_masked,improperly_masked without_mask=unmasked")
    parser.add_argument("--detect", action="store_true",
                        help="images are uncropped photos: find the face with the edge's detector")
    parser.add_argument("--config", default=None, help="config.ini whose [detector] --detect uses")
    parser.add_argument("--crop-margin", type=float, default=0.2,
                        help="without --detect: margin the images were cropped with (default 0.2)")
    parser.add_argument("--json", type=Path, default=None, help="write the metrics here")
    parser.add_argument("--png", type=Path, default=None, help="write the confusion matrix here")
    return parser


def eval_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for target in filter(None, (args.json, args.png)):
        check_writable(target)  # before the slow part, not after it
    detector = load_edge_config(args.config).detector if args.detect else None
    evaluator = Evaluator(args.model, detector, args.crop_margin)
    result = evaluate(evaluator, list_images(args.data_dir), parse_label_map(args.label_map))
    print(report.format_metrics(str(args.data_dir), result))
    if "false_alarm_rate" in result:
        print(report.format_false_alarms(result))
    if "detection" in result:
        print(f"detection: a face found in {result['detection']['image_rate']:.3f} of images"
              + (f", box recall {result['detection']['recall']:.3f}" if "recall" in result["detection"]
                 else ""))
    png = args.png or (args.json.with_suffix(".png") if args.json else None)
    try:
        if args.json:
            report.write_json(result, args.json)
        if png:
            report.plot_confusion(result, png, str(args.data_dir))
    except OSError as exc:
        raise ConfigError(f"{exc.filename}: cannot write the results ({exc.strerror or exc})") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command("maskipy-eval", build_parser(), eval_command, argv)


if __name__ == "__main__":
    sys.exit(main())
