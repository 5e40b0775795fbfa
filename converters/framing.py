"""How a detector frames a face compared with Haar's frontalface_default, measured on ../shared/data.

The classifier's crop contract was set on Haar-framed faces; each bundled detector model stores the
median shift and size factor that makes its boxes look like Haar's (``model.json`` ``framing``), so
a face is cropped alike whichever detector found it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.errors import MaskipyError

# A frame -> the detector's boxes in it, as (x, y, w, h) frame pixels.
BoxesOf = Callable[[np.ndarray], Sequence[tuple[float, float, float, float]]]


def measure_framing(boxes_of: BoxesOf, what: str, data: Path, per_source: int = 150, seed: int = 0
                    ) -> tuple[float, float, float, int]:
    """Median (dx, dy, size factor) from ``boxes_of``'s boxes to frontalface_default's, and n.

    dx, dy are in units of the detector's box width; measured on faces/ and realworld-photos images
    where both detectors found exactly one face, overlapping with IoU > 0.3.
    """
    from maskipy.edge.config import DetectorConfig
    from maskipy.edge.detectors.haar import HaarDetector
    from maskipy.edge.geometry import iou
    from maskipy.edge.preprocess import read_image

    haar = HaarDetector(replace(DetectorConfig(type="haar"), cascades=("frontalface_default",),
                                eye_cascades=(), calibrate_boxes=False))
    with open(data / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(seed)
    shifts: list[tuple[float, float, float]] = []
    for prefix in ("faces/", "realworld-photos/"):
        pool = [r for r in rows if r["path"].startswith(prefix)]
        for index in rng.permutation(len(pool))[:per_source]:
            frame = read_image(str(data / pool[index]["path"]))
            haar_boxes = [d.box for d in haar.detect(frame)]
            mine = list(boxes_of(frame))
            if len(haar_boxes) != 1 or len(mine) != 1:
                continue
            x, y, w, h = (float(v) for v in mine[0])
            hx, hy, hw, hh = haar_boxes[0]
            if iou((x, y, w, h), haar_boxes[0]) <= 0.3:
                continue
            shifts.append(((hx + hw / 2 - (x + w / 2)) / w, (hy + hh / 2 - (y + h / 2)) / w, hw / w))
    if len(shifts) < 20:
        raise MaskipyError(f"{what}: only {len(shifts)} faces found by both detectors; check --data")
    dx, dy, factor = np.median(np.asarray(shifts), axis=0)
    return round(float(dx), 3), round(float(dy), 3), round(float(factor), 3), len(shifts)


def write_model_json(target: Path, meta: dict[str, Any], data: Path,
                     measure: Callable[[Path, Path], tuple[float, float, float, int]]) -> dict[str, Any]:
    """Write ``target/model.json`` (so the model loads), measure its framing on ``data`` and write it
    again with the framing; returns the final model.json. Prints what was imported."""
    (target / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    dx, dy, factor, n = measure(target, data)
    meta["framing"] = [dx, dy, factor]
    meta["framing_measured_on"] = f"{n} faces of ../shared/data (faces/, realworld-photos/) found by both"
    (target / "model.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"{target.name}: sha256 {meta['sha256'][:12]}…, framing {meta['framing']} "
          f"({meta['framing_measured_on']})")
    return meta
