"""Write a model bundle (model.tflite + model.json) that the edge's bundle loader will accept."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from maskipy.edge.bundle import META_FILE, MODEL_FILE, load_bundle
from maskipy.edge.classifier.tflite import TFLiteClassifier
from maskipy.edge.swap.validate import GOLDEN_TOLERANCE, golden_crop

BUNDLE_FORMAT = "maskipy-bundle/1"
LICENCE_NOTE = ("Trained on images under non-commercial licences (MaskedFace-Net/FFHQ: CC BY-NC-SA "
                "4.0; LFW and real-photo sets: research use). Treat this model as non-commercial.")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def io_details(tflite: bytes) -> dict[str, Any]:
    """Input/output shape, dtype and quantization read from the flatbuffer itself."""
    from maskipy.edge.classifier.interpreter import load_interpreter_class

    interpreter_class, _ = load_interpreter_class()
    interpreter = interpreter_class(model_content=tflite)
    out = {}
    for name, details in (("input", interpreter.get_input_details()[0]),
                          ("output", interpreter.get_output_details()[0])):
        scale, zero = details["quantization"]
        out[name] = {"shape": [int(v) for v in details["shape"]], "dtype": np.dtype(details["dtype"]).name,
                     "scale": float(scale), "zero_point": int(zero)}
    return out


def golden(directory: Path, seed: int = 0) -> dict[str, Any]:
    """Expected output for a seeded random crop: a deploy checks the model still answers the same."""
    bundle = load_bundle(directory)
    classifier = TFLiteClassifier(bundle, num_threads=1)
    probs = classifier.scores(golden_crop(bundle.crop_spec.size, seed))
    return {"seed": seed, "probabilities": np.round(probs, 5).tolist(), "tolerance": GOLDEN_TOLERANCE}


def write_bundle(directory: Path, tflite: bytes, labels: list[str], crop: dict[str, Any],
                 extra: dict[str, Any]) -> Path:
    """Write atomically: a bundle dir is either the old one or the complete new one, never half."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=directory.parent))
    staging.chmod(0o755)  # mkdtemp makes it 0700; the service user must read it
    (staging / MODEL_FILE).write_bytes(tflite)
    meta = {
        "format": BUNDLE_FORMAT,
        "labels": list(labels),
        "preprocess": {"crop": crop, "scaling": "mobilenet_v2: pixels / 127.5 - 1"},
        **io_details(tflite),
        "model": {"file": MODEL_FILE, "sha256": sha256_bytes(tflite), "bytes": len(tflite)},
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "licence": LICENCE_NOTE,
        **extra,
    }
    (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    meta["golden"] = golden(staging)
    (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return publish(staging, directory)


def publish(staging: Path, directory: Path) -> Path:
    """Move a finished bundle directory into place; the old one goes only once the new one is there."""
    if directory.exists():
        backup = directory.with_name(directory.name + ".old")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(directory, backup)
        os.replace(staging, directory)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, directory)
    return directory


def update_metadata(directory: Path, **fields: Any) -> None:
    """Add fields to model.json (the .tflite, and so its sha256, is untouched)."""
    path = Path(directory) / META_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(fields)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
