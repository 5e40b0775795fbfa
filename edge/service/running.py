"""What model the running gate has loaded, told to the bundle installer through a small file.

The gate writes ``<state_dir>/running-model.json`` when its model is chosen and after every reload
attempt (SIGHUP). ``maskipy-edge bundle install`` reads it after signalling, so it reports what the
gate actually runs (the new model, or the old one kept because the gate refused the new one)
instead of only that a reload was asked for::

    {"pid": 812, "name": "v0007-...", "model": "/var/lib/maskipy/models/v0007-...", "sha256": "...",
     "time": 1764921600.2, "reload": {"ok": false, "error": "..."}}   # reload: null at start
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUNNING_FILE = "running-model.json"


def write_running(state_dir: str | Path, directory: Path, sha256: str, *, reload_ok: bool | None = None,
                  reload_error: str | None = None, clock: Callable[[], float] = time.time) -> None:
    """Report the model this process runs (and how its last reload went), atomically."""
    path = Path(state_dir) / RUNNING_FILE
    record = {"pid": os.getpid(), "name": Path(directory).name, "model": str(directory), "sha256": sha256,
              "time": clock(),
              "reload": None if reload_ok is None else {"ok": reload_ok, "error": reload_error}}
    temporary = path.with_name(f".{RUNNING_FILE}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        # A full or read-only state disk costs only this report: the installer then says it could
        # not confirm, as it did before the gate reported at all.
        log.debug("%s: cannot write (%s)", path, exc)


def read_running(state_dir: str | Path) -> dict[str, Any] | None:
    """The gate's last report, or None when there is none (or it cannot be read)."""
    try:
        record = json.loads((Path(state_dir) / RUNNING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def describe_running(record: dict[str, Any]) -> str:
    """``v0007-... (1a2b3c4d5e6f)``: the model a report names, as the installer and status print it."""
    return f"{record['name']} ({str(record['sha256'])[:12]})"


def wait_for_reload_report(state_dir: str | Path, pid: int, after: float, timeout: float,
                           poll: float = 0.1) -> dict[str, Any] | None:
    """Process ``pid``'s report of a reload attempt made at or after ``after`` (wall time), or None
    when none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        record = read_running(state_dir)
        if (record is not None and record["pid"] == pid and record.get("reload") is not None
                and float(record.get("time", 0)) >= after):
            return record
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)
