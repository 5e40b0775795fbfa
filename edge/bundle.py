"""Model bundles (model.tflite + model.json): locate, verify checksum and contract, load metadata;
where the deployed one is (the ``current``/``previous`` pointers of the model store)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError
from .preprocess import CropSpec

MODEL_FILE = "model.tflite"
META_FILE = "model.json"
PROBES_FILE = "probes.npz"  # optional: face crops that check the labels' meaning (edge/probes.py)
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "default"
# The model store under the state directory (written by swap/, read here by the runtime).
MODELS_DIR = "models"
CURRENT, PREVIOUS = "current", "previous"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, fix: str) -> str:
    """``path``'s sha256, which must be ``expected`` (the model.json beside it): else a ModelError."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(f"{path}: sha256 {actual[:12]}… does not match model.json's {expected[:12]}…; {fix}")
    return actual


@dataclass(frozen=True)
class Bundle:
    """A verified model bundle: where it is, its labels, and the crop contract it was trained on."""

    directory: Path
    labels: tuple[str, ...]
    crop_spec: CropSpec
    sha256: str
    metadata: dict[str, Any] = field(repr=False, hash=False, compare=False)

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_FILE

    @property
    def json_path(self) -> Path:
        return self.directory / META_FILE


def bundle_files(directory: Path) -> list[Path]:
    """The files that make up the bundle in ``directory``: what a copy or deploy must carry."""
    directory = Path(directory)
    files = [directory / MODEL_FILE, directory / META_FILE]
    return [*files, directory / PROBES_FILE] if (directory / PROBES_FILE).is_file() else files


def resolve_bundle_dir(location: str | Path | None) -> Path:
    """A bundle directory from a directory, a model.json or model.tflite path, or None (default)."""
    if location is None or str(location) == "":
        return DEFAULT_BUNDLE
    path = Path(location).expanduser()
    if path.is_file() and path.name in (META_FILE, MODEL_FILE):
        return path.parent
    if path.suffix in (".tflite", ".json") and not path.exists():
        raise ModelError(f"{path}: not found; pass a bundle directory holding {MODEL_FILE} and {META_FILE}")
    return path


def load_bundle(location: str | Path | None = None) -> Bundle:
    """Read and verify a bundle; every failure (a ModelError) names the file, the mismatch and the fix."""
    directory = resolve_bundle_dir(location)
    try:
        return _load(directory)
    except OSError as exc:  # e.g. a bundle the service user may not read
        raise ModelError(f"{directory}: cannot read the bundle ({exc.strerror or exc}: {exc.filename}); "
                         f"make it readable by the service user (chown -R maskipy) or copy it again"
                         ) from None


def _load(directory: Path) -> Bundle:
    meta_path, model_path = directory / META_FILE, directory / MODEL_FILE
    if not directory.is_dir():
        raise ModelError(f"{directory}: bundle directory not found; give [classifier] model or "
                         f"--model a directory made by maskipy-convert")
    for needed in (meta_path, model_path):
        if not needed.is_file():
            raise ModelError(f"{needed}: missing from the bundle; copy the whole bundle made by "
                             f"maskipy-convert ({MODEL_FILE} and {META_FILE})")
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{meta_path}: not valid JSON ({exc}); re-run maskipy-convert") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"{meta_path}: not a JSON object; re-run maskipy-convert")
    try:
        labels = tuple(metadata["labels"])
        crop_spec = CropSpec.from_dict(metadata["preprocess"]["crop"])
        expected = metadata["model"]["sha256"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{meta_path}: missing or invalid field {exc}; re-run maskipy-convert") from None
    if not isinstance(metadata["labels"], list) or not labels or not all(
            isinstance(label, str) and label for label in labels):
        raise ModelError(f"{meta_path}: labels must be a list of class names (strings); "
                         f"found {metadata['labels']!r}; re-run maskipy-convert")
    if len(set(labels)) != len(labels):
        raise ModelError(f"{meta_path}: labels {labels} must be non-empty and unique")
    if not isinstance(crop_spec.size, int) or isinstance(crop_spec.size, bool):
        raise ModelError(f"{meta_path}: preprocess.crop.size must be a whole number, found "
                         f"{crop_spec.size!r}; re-run maskipy-convert")
    if not isinstance(expected, str):
        raise ModelError(f"{meta_path}: model.sha256 must be a hex string, found {expected!r}; "
                         f"re-run maskipy-convert")
    actual = verify_sha256(model_path, expected, "the file is corrupt or from another bundle; copy it again")
    return Bundle(directory, labels, crop_spec, actual, metadata)


def models_dir(state_dir: str | Path) -> Path:
    """The model store: ``<state_dir>/models``."""
    return Path(state_dir) / MODELS_DIR


def pointer(state_dir: str | Path, name: str) -> Path | None:
    """The version directory the store's ``name`` link points to, or None."""
    link = models_dir(state_dir) / name
    if not link.is_symlink():
        return None
    target = Path(os.path.realpath(link))
    return target if target.is_dir() else None


def not_a_store_link(path: Path) -> str | None:
    """Why the store's ``current`` or ``previous`` at ``path`` is not the link installs manage (a folder
    or file copied there by hand, which the gate never loads), with how to install it; None when it is
    a link or absent."""
    if path.is_symlink() or not os.path.lexists(path):
        return None
    kind = "folder" if path.is_dir() else "file"
    keep = path.parent.parent / f"hand-copied-{path.name}"
    return (f"{path} is a {kind}, not the link that bundle install manages (copied there by hand?), and "
            f"the gate does not load it. To keep it as a bundle: mv {path} {keep} && maskipy-edge bundle "
            f"install {keep}; to drop it: rm -r {path}")


def current_bundle_dir(state_dir: str | Path) -> Path | None:
    """The installed bundle the runtime should load, resolved so a later swap cannot mix its files.

    None when nothing was ever installed (the runtime then uses ``[classifier] model`` or the default).
    """
    return pointer(state_dir, CURRENT)


def previous_bundle_dir(state_dir: str | Path) -> Path | None:
    """The bundle ``current`` replaced (what a rollback or a failed start falls back to)."""
    return pointer(state_dir, PREVIOUS)
