"""The gate's pid file: written by ``maskipy-edge run``, read by the bundle manager to SIGHUP a reload."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)

PID_FILE = "maskipy-edge.pid"


def write_pid_file(state_dir: Path) -> Path:
    """Record this process's pid under the state directory (a full or read-only disk: a warning)."""
    path = Path(state_dir) / PID_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{os.getpid()}\n", encoding="utf-8")
    except OSError as exc:
        # The gate must still run; only 'bundle install' loses its way to signal a reload.
        log.warning("%s: cannot write the pid file (%s); reload with 'systemctl reload maskipy-edge' "
                    "after a deploy", path, exc)
    return path


def remove_pid_file(path: Path) -> None:
    """Remove the pid file if it is still ours (a newer process may have replaced it)."""
    try:
        if path.read_text(encoding="utf-8").split()[:1] == [str(os.getpid())]:
            path.unlink()
    except (OSError, IndexError) as exc:
        log.debug("pid file %s: %s", path, exc)


def running_pid(state_dir: str | Path) -> tuple[int | None, str]:
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
    pid, why = running_pid(state_dir)
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
