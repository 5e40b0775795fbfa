"""The Pi side of deploys: validate an uploaded bundle, swap it in atomically, roll back, signal a reload."""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bundle import META_FILE, MODEL_FILE, Bundle, bundle_files, load_bundle
from .config import COUNTED_CLASSES, load_edge_config
from .errors import DeployError, MaskipyError, ModelError, report_error

if TYPE_CHECKING:  # the interpreter is imported only when a bundle is validated
    from .classify import TFLiteClassifier

MODELS_DIR, INCOMING_DIR = "models", "incoming"
CURRENT, PREVIOUS = "current", "previous"
PID_FILE = "maskipy-edge.pid"
# What systemd/install.sh sets up; the CLI defaults to them on an installed Pi.
SERVICE_CONFIG = Path("/etc/maskipy/config.ini")
SERVICE_STATE_DIR = Path("/var/lib/maskipy")
KEEP_VERSIONS = 3
VERSION_NAME = re.compile(r"^v(\d+)-")
LOCK_WAIT_SECONDS = 60.0
# An upload left in incoming/ this long is an abandoned deploy (its cleanup never ran).
STALE_INCOMING_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Validation:
    """A bundle that passed every check, and what was checked."""

    bundle: Bundle
    runtime: str
    golden_diff: float | None
    probes: str = "probes not checked"

    def describe(self) -> str:
        golden = ("no golden output in model.json" if self.golden_diff is None
                  else f"golden output within {self.golden_diff:.4f}")
        return (f"sha256 {self.bundle.sha256[:12]}, labels {','.join(self.bundle.labels)}, "
                f"loads in {self.runtime}, {golden}, {self.probes}")


@dataclass(frozen=True)
class SwapResult:
    """What an install or rollback did to the pointers, and what happened to the running service."""

    action: str
    current: Path
    previous: Path | None
    reload: str
    reload_ok: bool = True
    validation: Validation | None = None

    def describe(self) -> str:
        previous = self.previous.name if self.previous else "none"
        return f"{self.action} {self.current.name}; previous {previous}; {self.reload}"


def models_dir(state_dir: str | Path) -> Path:
    return Path(state_dir) / MODELS_DIR


def _pointer(state_dir: str | Path, name: str) -> Path | None:
    link = models_dir(state_dir) / name
    if not link.is_symlink():
        return None
    target = Path(os.path.realpath(link))
    return target if target.is_dir() else None


def current_bundle_dir(state_dir: Path) -> Path | None:
    """The installed bundle the runtime should load, resolved so a later swap cannot mix its files.

    None when nothing was ever installed (the runtime then uses ``[classifier] model`` or the default).
    """
    return _pointer(state_dir, CURRENT)


def previous_bundle_dir(state_dir: Path) -> Path | None:
    return _pointer(state_dir, PREVIOUS)


def _golden(bundle: Bundle) -> tuple[int, np.ndarray | None, float]:
    """(seed, expected probabilities or None, tolerance) from model.json's optional ``golden``."""
    golden = bundle.metadata.get("golden")
    if golden is None:
        return 0, None, 0.0
    try:
        return (int(golden["seed"]), np.asarray(golden["probabilities"], dtype=np.float32),
                float(golden.get("tolerance", 0.05)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{bundle.json_path}: invalid golden field ({exc}); "
                         f"re-run maskipy-convert") from None


def check_golden(classifier: TFLiteClassifier, bundle: Bundle) -> float | None:
    """Run the golden crop; the largest difference from model.json's probabilities (None: none given).

    Without a golden entry the crop is still run once, so a model that loads but cannot infer
    is refused here rather than in the service.
    """
    seed, expected, tolerance = _golden(bundle)
    size = bundle.crop_spec.size
    crop = np.random.default_rng(seed).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    try:
        probs = classifier.classify(crop)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{bundle.model_path}: inference failed ({exc}); re-run maskipy-convert") from None
    if not np.all(np.isfinite(probs)):
        raise ModelError(f"{bundle.model_path}: inference gives non-finite scores; re-run maskipy-convert")
    if expected is None:
        return None
    if expected.shape != probs.shape:
        raise ModelError(f"{bundle.json_path}: golden probabilities have shape {expected.shape}, the model "
                         f"gives {probs.shape}; re-run maskipy-convert")
    diff = float(np.max(np.abs(probs - expected)))
    if diff > tolerance:
        raise ModelError(f"{bundle.model_path}: golden output differs by {diff:.4f} (tolerance {tolerance}); "
                         f"the model does not compute what maskipy-convert measured; copy it again or "
                         f"re-convert for this runtime")
    return diff


def validate_bundle(location: str | Path, labels: Sequence[str] = COUNTED_CLASSES,
                    reject_label: str = "not_face") -> Validation:
    """Checksum, TFLite load, input contract, labels against the config, golden inference, labels by
    meaning (probe crops): or ModelError."""
    from .modelload import load_model

    config = load_edge_config().replace(
        "classifier", labels=tuple(labels), reject_label=reject_label, num_threads=1)
    bundle, classifier = load_model(config, location)  # probes are checked here
    golden = check_golden(classifier, bundle)
    return Validation(bundle, classifier.runtime, golden, getattr(classifier, "probe_summary", ""))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _point(link: Path, target_name: str) -> None:
    """Repoint ``link`` in one rename: readers see the old target or the new one, never neither."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target_name, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


@contextmanager
def _locked(models: Path) -> Iterator[None]:
    """One install or rollback at a time per state dir (two deploys to one Pi must not interleave)."""
    models.mkdir(parents=True, exist_ok=True)
    with open(models / ".lock", "w") as handle:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DeployError(f"{models}/.lock: another bundle install or rollback has held it for "
                                      f"{LOCK_WAIT_SECONDS:.0f} s; wait for it and try again") from None
                time.sleep(0.2)
        yield


def _store(bundle: Bundle, models: Path) -> Path:
    """Copy the bundle into a new version dir, fully written and synced before it gets its name."""
    # A sequence number orders versions even when a Pi without a clock battery boots in the past.
    last = max((_sequence(p) for p in _versions(models)), default=0)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"v{last + 1:04d}-{stamp}-{bundle.sha256[:12]}"
    staging = models / f".staging-{name}"
    try:
        staging.mkdir()
        for path in bundle_files(bundle.directory):
            shutil.copyfile(path, staging / path.name)
            with open(staging / path.name, "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(staging)
        os.rename(staging, models / name)
    except BaseException:
        # A full disk or a kill mid-copy: leave nothing half-written behind.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(models)
    return models / name


def _same_bundle(a: Path, b: Path) -> bool:
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in (MODEL_FILE, META_FILE))


def _sequence(version: Path) -> int:
    return int(VERSION_NAME.match(version.name).group(1))  # type: ignore[union-attr]


def _versions(models: Path) -> list[Path]:
    """Installed version dirs (``vNNNN-<utc time>-<sha256>``), newest first."""
    if not models.is_dir():
        return []
    found = [p for p in models.iterdir() if VERSION_NAME.match(p.name) and p.is_dir()]
    return sorted(found, key=_sequence, reverse=True)


def _prune(models: Path, keep: int) -> None:
    """Drop old versions, staging leftovers of crashed installs and abandoned uploads."""
    pinned = {_pointer(models.parent, CURRENT), _pointer(models.parent, PREVIOUS)}
    cutoff = time.time() - STALE_INCOMING_SECONDS
    uploads = (models / INCOMING_DIR).glob("*")
    stale = [p for p in uploads if p.is_dir() and p.stat().st_mtime < cutoff]
    for old in [*_versions(models)[keep:], *models.glob(".staging-*"), *stale]:
        if old.resolve() not in pinned:
            shutil.rmtree(old, ignore_errors=True)


def _running_pid(state_dir: str | Path) -> tuple[int | None, str]:
    """The live maskipy pid from the pid file, or None and why not.

    Its command line must mention maskipy: SIGHUP's default action would kill a recycled pid's owner.
    """
    pid_path = Path(state_dir) / PID_FILE
    try:
        pid = int(pid_path.read_text().split()[0])
    except FileNotFoundError:
        return None, "no pid file"
    except (IndexError, ValueError, OSError):
        return None, f"{pid_path} is unreadable"
    try:
        alive = pid > 1 and b"maskipy" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        alive = False
    except OSError:
        alive = True  # cannot tell (hidepid); os.kill decides
    return (pid, "") if alive else (None, f"stale {pid_path}, pid {pid}")


def signal_reload(state_dir: str | Path) -> tuple[str, bool]:
    """SIGHUP the running service so it loads ``current``; returns (what happened, whether that is fine)."""
    pid, why = _running_pid(state_dir)
    try:
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            return f"reload signalled (SIGHUP to pid {pid})", True
    except ProcessLookupError:
        why = f"pid {pid} exited"
    except PermissionError:
        return (f"reload NOT signalled: no permission to signal pid {pid}; run 'sudo systemctl reload "
                f"maskipy-edge', or install as the service user (sudo -n -u maskipy maskipy-edge ...)"), False
    return f"service not running ({why}): the model loads when it starts", True


def install_bundle(incoming_dir: str | Path, state_dir: str | Path,
                   labels: Sequence[str] = COUNTED_CLASSES, reject_label: str = "not_face",
                   keep: int = KEEP_VERSIONS, notify: bool = True) -> SwapResult:
    """Validate ``incoming_dir`` and make it ``current``, the old one ``previous``; then signal a reload.

    The copy is re-checked against what was validated, so what runs is exactly what passed. A
    bundle that fails raises ModelError and leaves ``current`` untouched.
    """
    validation = validate_bundle(incoming_dir, labels, reject_label)  # slow part, outside the lock
    bundle = validation.bundle
    models = models_dir(state_dir)
    with _locked(models):
        old = _pointer(state_dir, CURRENT)
        if old is not None and _same_bundle(bundle.directory, old):
            # A retried deploy must not make previous a copy of current and lose the real rollback.
            return SwapResult("already current:", old, _pointer(state_dir, PREVIOUS), "reload not needed",
                              validation=validation)
        stored = _store(bundle, models)
        try:
            copied = load_bundle(stored)
            if copied.metadata != bundle.metadata:
                raise ModelError(f"{bundle.json_path}: changed while it was being installed; upload it again")
        except MaskipyError:
            shutil.rmtree(stored, ignore_errors=True)
            raise
        if old is not None:
            _point(models / PREVIOUS, old.name)
        _point(models / CURRENT, stored.name)
        _prune(models, keep)
    message, ok = signal_reload(state_dir) if notify else ("reload not requested", True)
    return SwapResult("installed", stored, old, message, ok, validation)


def rollback(state_dir: str | Path, labels: Sequence[str] = COUNTED_CLASSES,
             reject_label: str = "not_face", notify: bool = True) -> SwapResult:
    """Make ``previous`` current again (and the current one previous), after re-checking it."""
    models = models_dir(state_dir)
    with _locked(models):
        previous, current = _pointer(state_dir, PREVIOUS), _pointer(state_dir, CURRENT)
        if previous is None:
            raise DeployError(f"{models}: no previous bundle to roll back to; install a known-good "
                              f"bundle with 'maskipy-edge bundle install DIR'")
        validate_bundle(previous, labels, reject_label)
        if current is not None:
            _point(models / PREVIOUS, current.name)
        _point(models / CURRENT, previous.name)
    message, ok = signal_reload(state_dir) if notify else ("reload not requested", True)
    return SwapResult("rolled back to", previous, current, message, ok)


def bundle_status(state_dir: str | Path) -> list[tuple[str, str]]:
    """(field, value) rows describing the installed bundles and the service, for ``bundle status``."""
    versions = [p.name for p in _versions(models_dir(state_dir))]
    current, previous = _pointer(state_dir, CURRENT), _pointer(state_dir, PREVIOUS)
    pid, why = _running_pid(state_dir)
    return [
        ("state dir", str(Path(state_dir))),
        ("current", current.name if current else
         "none (the runtime uses [classifier] model or the built-in default)"),
        ("previous", previous.name if previous else "none"),
        ("versions", ", ".join(versions) or "none"),
        ("service", f"running (pid {pid})" if pid else f"not running ({why})"),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskipy-edge bundle",
                                     description="Install, roll back and inspect model bundles on this Pi.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {"install": "validate DIR and make it the current model, keeping the old one for rollback",
             "rollback": "make the previous model current again",
             "status": "show the current and previous models and whether the service runs",
             "validate": "check DIR (checksum, runtime load, labels, golden output) without installing"}
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text)
        if name in ("install", "validate"):
            sub.add_argument("directory", metavar="DIR", type=Path,
                             help="bundle directory holding model.tflite and model.json")
        if name != "validate":
            sub.add_argument("--state-dir", type=Path, help=f"default: {SERVICE_STATE_DIR} if it exists, "
                             f"else the config's [counts] state_dir")
        sub.add_argument("--config", help=f"config whose [classifier] labels the model must match "
                         f"(default: {SERVICE_CONFIG} if it exists)")
    return parser


def run(args: argparse.Namespace) -> int:
    config = load_edge_config(args.config or (SERVICE_CONFIG if SERVICE_CONFIG.is_file() else None))
    labels, reject = config.classifier.labels, config.classifier.reject_label
    state_dir = getattr(args, "state_dir", None) or (
        SERVICE_STATE_DIR if SERVICE_STATE_DIR.is_dir() else config.counts.state_dir)
    if args.command == "validate":
        print(f"valid {args.directory}: {validate_bundle(args.directory, labels, reject).describe()}")
        return 0
    if args.command == "status":
        for key, value in bundle_status(state_dir):
            print(f"{key:<10} {value}")
        return 0
    if args.command == "install":
        result = install_bundle(args.directory, state_dir, labels, reject)
        if result.validation:
            print(f"valid {args.directory}: {result.validation.describe()}")
    else:
        result = rollback(state_dir, labels, reject)
    print(result.describe())
    if not result.reload_ok:
        print(f"maskipy-edge: error: {result.action} {result.current.name}, but {result.reload}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``maskipy-edge bundle ...``; accepts argv with or without the leading ``bundle``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bundle"]:
        args_list = args_list[1:]
    try:
        return run(build_parser().parse_args(args_list))
    except SystemExit as exc:  # argparse: usage errors and --help; a dispatcher wants a code
        return exc.code if isinstance(exc.code, int) else 1
    except (MaskipyError, OSError) as exc:
        hint = ("; run as the service user (sudo -u maskipy) or fix the state dir's owner"
                if isinstance(exc, PermissionError) else "")
        return report_error("maskipy-edge", exc, hint)


if __name__ == "__main__":
    sys.exit(main())
