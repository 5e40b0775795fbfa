"""Install a validated bundle as ``current`` (the old one becomes ``previous``), roll back, report status."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..bundle import CURRENT, PREVIOUS, load_bundle, models_dir, pointer
from ..config import COUNTED_CLASSES
from ..errors import DeployError, ModelError
from ..service.pidfile import running_pid, signal_reload
from ..service.running import describe_running, read_running, wait_for_reload_report
from .store import KEEP_VERSIONS, check_links, locked, prune, same_bundle, store_copy, switch, versions
from .validate import Validation, validate_bundle

# How long install and rollback wait for the gate to say what it loaded after the SIGHUP: it
# reloads between frames, so a second is plenty unless the camera is stalled.
CONFIRM_SECONDS = 20.0


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


def install_bundle(incoming_dir: str | Path, state_dir: str | Path,
                   labels: Sequence[str] = COUNTED_CLASSES, reject_label: str = "not_face",
                   keep: int = KEEP_VERSIONS, notify: bool = True) -> SwapResult:
    """Validate ``incoming_dir`` and make it ``current``, the old one ``previous``; then signal a reload.

    The copy is re-checked against what was validated, so what runs is exactly what passed. A
    bundle that fails raises ModelError and leaves ``current`` untouched; so does any later failure
    (the new version is removed, ``previous`` put back). A ``current`` or ``previous`` copied by hand
    (a folder, not the store's link) is refused before anything is done (DeployError).
    """
    models = models_dir(state_dir)
    check_links(models)  # before the slow part: a store it must not switch is refused at once
    validation = validate_bundle(incoming_dir, labels, reject_label)  # slow part, outside the lock
    bundle = validation.bundle
    with locked(models):
        check_links(models)
        old = pointer(state_dir, CURRENT)
        if old is not None and same_bundle(bundle.directory, old):
            # A retried deploy must not make previous a copy of current and lose the real rollback.
            return SwapResult("already current:", old, pointer(state_dir, PREVIOUS), "reload not needed",
                              validation=validation)
        stored = store_copy(bundle, models)
        try:
            copied = load_bundle(stored)
            if copied.metadata != bundle.metadata:
                raise ModelError(f"{bundle.json_path}: changed while it was being installed; upload it again")
            switch(models, stored, old)
        except BaseException:
            # Not switched (a full disk, a kill): the new version goes, so nothing of it is left behind.
            if pointer(state_dir, CURRENT) != stored.resolve():
                shutil.rmtree(stored, ignore_errors=True)
            raise
        prune(models, keep)
    message, ok = reload_and_confirm(state_dir, copied.sha256) if notify else ("reload not requested", True)
    return SwapResult("installed", stored, old, message, ok, validation)


def rollback(state_dir: str | Path, labels: Sequence[str] = COUNTED_CLASSES,
             reject_label: str = "not_face", notify: bool = True) -> SwapResult:
    """Make ``previous`` current again (and the current one previous), after re-checking it."""
    models = models_dir(state_dir)
    check_links(models)
    with locked(models):
        check_links(models)
        previous, current = pointer(state_dir, PREVIOUS), pointer(state_dir, CURRENT)
        if previous is None:
            raise DeployError(f"{models}: no previous bundle to roll back to; install a known-good "
                              f"bundle with 'maskipy-edge bundle install DIR'")
        validate_bundle(previous, labels, reject_label)
        switch(models, previous, current)
    message, ok = (reload_and_confirm(state_dir, load_bundle(previous).sha256) if notify
                   else ("reload not requested", True))
    return SwapResult("rolled back to", previous, current, message, ok)


def reload_and_confirm(state_dir: str | Path, expected_sha256: str,
                       timeout: float = CONFIRM_SECONDS) -> tuple[str, bool]:
    """SIGHUP the running gate, then wait for it to report what it loaded; (what happened, fine?).

    A gate that does not report (one from before reports, or a state disk it cannot write) is only
    signalled, as before.
    """
    pid, _ = running_pid(state_dir)
    reports = pid is not None and (read_running(state_dir) or {}).get("pid") == pid
    sent = time.time()
    message, ok = signal_reload(state_dir)
    if not ok or not reports or pid is None:  # pid: for the type checker, reports implies it
        return message, ok
    report = wait_for_reload_report(state_dir, pid, after=sent, timeout=timeout)
    if report is None:
        return (f"{message}; the gate (pid {pid}) did not say within {timeout:.0f} s what it loaded "
                f"(a stalled camera?); maskipy-edge bundle status shows what it runs"), False
    running = describe_running(report)
    if not report["reload"]["ok"]:
        return f"the gate (pid {pid}) refused it and keeps {running}: {report['reload']['error']}", False
    if report["sha256"] != expected_sha256:
        return (f"the gate (pid {pid}) runs {running}, not the installed model: its --model or "
                f"[classifier] model names another bundle"), False
    return f"the gate (pid {pid}) now runs {running}", True


def bundle_status(state_dir: str | Path) -> list[tuple[str, str]]:
    """(field, value) rows describing the installed bundles and the service, for ``bundle status``."""
    names = [p.name for p in versions(models_dir(state_dir))]
    current, previous = pointer(state_dir, CURRENT), pointer(state_dir, PREVIOUS)
    pid, why = running_pid(state_dir)
    report = read_running(state_dir) if pid else None
    loaded = describe_running(report) if report and report["pid"] == pid else "not reported"
    return [
        ("state dir", str(Path(state_dir))),
        ("current", current.name if current else
         "none (the runtime uses [classifier] model or the built-in default)"),
        ("previous", previous.name if previous else "none"),
        ("versions", ", ".join(names) or "none"),
        ("service", f"running (pid {pid}), model {loaded}" if pid else f"not running ({why})"),
    ]
