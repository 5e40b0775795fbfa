"""Labels checked by meaning: a few real face crops per class, stored in the bundle with their labels.

A checksum proves the files arrived intact, a golden output proves the model computes what the
converter measured; neither notices ``properly_masked`` and ``unmasked`` swapped in model.json,
which inverts the gate. ``probes.npz`` holds small JPEG crops (cut by the bundle's crop contract)
that the model got right, with margin, when the bundle was made; model.json lists their labels::

    "probes": {"file": "probes.npz", "sha256": "...", "labels": ["properly_masked", ...],
               "licence": "..."}

A bundle without probes (made before they existed, or with probes.npz removed) is checked, when
validated for a deploy, with the kit's own: the built-in bundle's crops, brought to its crop size
and colour order. Only when neither exists (a custom label set) is it a warning, not a refusal.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import DEFAULT_BUNDLE, PROBES_FILE, Bundle, load_bundle, sha256_file
from ..errors import ModelError

log = logging.getLogger(__name__)

# MIT-licensed real web photos (chandrikadeb7/Face-Mask-Detection), safe to ship inside a bundle: the
# photos themselves for the two classes they are labelled with, and their top-left corners (background)
# for not_face. With those three pinned, no permutation of four labels goes unnoticed; no permissively
# licensed improperly_masked photos exist in ../shared/data.
PROBE_SOURCES = {"properly_masked": ("realworld-2class/with_mask", "face"),
                 "unmasked": ("realworld-2class/without_mask", "face"),
                 "not_face": ("realworld-2class/without_mask", "corner")}
PROBE_LICENCE = "probe crops: chandrikadeb7/Face-Mask-Detection (MIT), via ../shared/data/realworld-2class"
PER_LABEL = 3
MIN_CONFIDENCE = 0.8


def _decode(jpeg: np.ndarray, colour_order: str) -> np.ndarray:
    import cv2

    image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("undecodable crop")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if colour_order == "rgb" else image


def _encode(crop: np.ndarray, colour_order: str) -> np.ndarray:
    import cv2

    bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR) if colour_order == "rgb" else crop
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("cannot encode a probe crop")
    return jpeg.reshape(-1)


def load_probes(bundle: Bundle) -> tuple[np.ndarray, list[str]] | None:
    """(crops, expected labels) from the bundle, None when it has none; ModelError when they are bad."""
    entry = bundle.metadata.get("probes")
    if entry is None:
        return None
    path = bundle.directory / PROBES_FILE
    try:
        labels, expected_sha = list(entry["labels"]), entry["sha256"]
        if not all(isinstance(label, str) for label in labels) or not isinstance(expected_sha, str):
            raise TypeError("labels must be strings and sha256 a string")
        if sha256_file(path) != expected_sha:
            raise ValueError(f"{PROBES_FILE} does not match its sha256")
        with np.load(path, allow_pickle=False) as stored:
            crops = [_decode(stored[f"p{i}"], bundle.crop_spec.colour_order) for i in range(len(labels))]
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ModelError(f"{bundle.json_path}: probe crops unusable ({exc}); copy the whole bundle again "
                         f"or re-run maskipy-convert") from None
    size = bundle.crop_spec.size
    if any(c.shape != (size, size, 3) for c in crops):
        raise ModelError(f"{path}: probe crops are not {size}x{size}; re-run maskipy-convert")
    return np.stack(crops), labels


def check_probes(classifier: Any, bundle: Bundle, *, kit_probes: bool = False) -> str:
    """Classify the probe crops; ModelError unless most probes of every class get their label.

    ``kit_probes``: without crops of its own, the bundle is checked with the kit's (validation
    before a deploy does this). Returns a short description for ``bundle validate``.
    """
    loaded, whose = load_probes(bundle), ""
    if loaded is None and kit_probes:
        loaded, whose = load_kit_probes(bundle), "the kit's "
    if loaded is None:
        log.warning("%s: no probe crops, so the labels' meaning is not checked (a bundle made before "
                    "probes existed, with labels the kit's own probes do not cover); re-run "
                    "maskipy-convert to add them", bundle.json_path)
        return "no probe crops (labels not checked by meaning)"
    crops, expected = loaded
    predicted = [bundle.labels[int(i)] for i in np.argmax(classifier.scores(crops), axis=1)]
    wrong: dict[str, list[str]] = {}
    for label in dict.fromkeys(expected):
        answers = [p for p, e in zip(predicted, expected, strict=True) if e == label]
        if 2 * sum(a == label for a in answers) <= len(answers):
            wrong[label] = answers
    if wrong:
        detail = "; ".join(f"{label} probes classified as {', '.join(answers)}"
                           for label, answers in wrong.items())
        raise ModelError(f"{bundle.json_path}: the labels do not mean what they say ({detail}); model.json's "
                         f"labels are in the wrong order or belong to another model; re-run maskipy-convert")
    return f"{whose}{len(expected)} probe crops labelled right ({', '.join(dict.fromkeys(expected))})"


def load_kit_probes(bundle: Bundle) -> tuple[np.ndarray, list[str]] | None:
    """The built-in bundle's probe crops for a bundle that has none, in its crop size and colour
    order; None when the built-in bundle is this one, has no probes, or uses labels this one lacks."""
    import cv2

    if bundle.directory.resolve() == DEFAULT_BUNDLE.resolve():
        return None
    try:
        kit = load_bundle(DEFAULT_BUNDLE)
        loaded = load_probes(kit)
    except ModelError:
        return None
    if loaded is None or not set(loaded[1]) <= set(bundle.labels):
        return None
    crops, labels = loaded
    spec, size = bundle.crop_spec, bundle.crop_spec.size
    if spec.colour_order != kit.crop_spec.colour_order:
        crops = crops[..., ::-1]
    if size != kit.crop_spec.size:
        crops = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])
    return np.ascontiguousarray(crops), labels


def candidate_images(data_dir: Path, labels: Iterable[str]) -> dict[str, tuple[str, list[Path]]]:
    """Per label: the region to cut ("face": the whole photo, "corner": its top-left third) and the
    MIT-licensed photos under ``data_dir`` to cut it from (sorted, so repeatable)."""
    found: dict[str, tuple[str, list[Path]]] = {}
    for label in labels:
        if label not in PROBE_SOURCES:
            continue
        folder, region = PROBE_SOURCES[label]
        if (Path(data_dir) / folder).is_dir():
            found[label] = (region, sorted(p for p in (Path(data_dir) / folder).iterdir()
                                           if p.suffix.lower() in (".jpg", ".jpeg", ".png")))
    return found


def make_probes(directory: Path, bundle: Bundle, classifier: Any,
                candidates: dict[str, tuple[str, list[Path]]], per_label: int = PER_LABEL,
                tries: int = 80) -> dict[str, Any] | None:
    """Write ``probes.npz`` with crops the model gets right (confidence >= MIN_CONFIDENCE); its entry."""
    from ..preprocess import crop_face, read_image, whole_image_box

    spec = bundle.crop_spec
    jpegs: list[np.ndarray] = []
    labels: list[str] = []
    for label, (region, paths) in candidates.items():
        chosen = 0
        for path in paths[:tries]:
            image = read_image(str(path))
            height, width = image.shape[:2]
            box = (whole_image_box(image.shape, spec.margin) if region == "face"
                   else (0, 0, max(2, width // 3), max(2, height // 3)))
            crop = crop_face(image, box, spec)
            jpeg = _encode(crop, spec.colour_order)
            probs = classifier.scores(_decode(jpeg, spec.colour_order)[None])[0]
            if bundle.labels[int(np.argmax(probs))] == label and float(np.max(probs)) >= MIN_CONFIDENCE:
                jpegs.append(jpeg)
                labels.append(label)
                chosen += 1
                if chosen == per_label:
                    break
    if not labels:
        return None
    buffer = io.BytesIO()
    np.savez(buffer, **{f"p{i}": jpeg for i, jpeg in enumerate(jpegs)})
    (Path(directory) / PROBES_FILE).write_bytes(buffer.getvalue())
    import hashlib

    return {"file": PROBES_FILE, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest(), "labels": labels,
            "licence": PROBE_LICENCE}
