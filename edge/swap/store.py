"""The versioned model store under ``<state_dir>/models``: version dirs, the current/previous pointers,
the install lock and pruning. Every change is synced and switched with one rename."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from ..bundle import (
    CURRENT,
    META_FILE,
    MODEL_FILE,
    PREVIOUS,
    Bundle,
    bundle_files,
    not_a_store_link,
    pointer,
)
from ..errors import DeployError

INCOMING_DIR = "incoming"
KEEP_VERSIONS = 3
VERSION_NAME = re.compile(r"^v(\d+)-")
LOCK_WAIT_SECONDS = 60.0
# An upload left in incoming/ this long is an abandoned deploy (its cleanup never ran).
STALE_INCOMING_SECONDS = 24 * 3600


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def point(link: Path, target_name: str) -> None:
    """Repoint ``link`` in one rename: readers see the old target or the new one, never neither."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(target_name, tmp)
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a refused switch leaves no stray link
        raise
    fsync_dir(link.parent)


def check_links(models: Path) -> None:
    """Refuse a store whose ``current`` or ``previous`` is not the link installs manage (a folder or
    file copied there by hand): switching it would fail halfway or replace what the operator put there."""
    for name in (CURRENT, PREVIOUS):
        problem = not_a_store_link(models / name)
        if problem:
            raise DeployError(f"{problem}; nothing was changed: install again after that")


def switch(models: Path, current: Path, previous: Path | None) -> None:
    """Point ``previous``, then ``current``; if ``current`` cannot be switched, ``previous`` is put back,
    so a failure never leaves a mix of old and new pointers."""
    link = models / PREVIOUS
    before = os.readlink(link) if link.is_symlink() else None
    if previous is not None:
        point(link, previous.name)
    try:
        point(models / CURRENT, current.name)
    except BaseException:
        if previous is not None:
            with suppress(OSError):
                if before is None:
                    link.unlink(missing_ok=True)
                else:
                    point(link, before)
        raise


@contextmanager
def locked(models: Path) -> Iterator[None]:
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


def store_copy(bundle: Bundle, models: Path) -> Path:
    """Copy the bundle into a new version dir, fully written and synced before it gets its name."""
    # A sequence number orders versions even when a Pi without a clock battery boots in the past.
    last = max((_sequence(p) for p in versions(models)), default=0)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"v{last + 1:04d}-{stamp}-{bundle.sha256[:12]}"
    staging = models / f".staging-{name}"
    try:
        staging.mkdir()
        for path in bundle_files(bundle.directory):
            shutil.copyfile(path, staging / path.name)
            with open(staging / path.name, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(staging)
        os.rename(staging, models / name)
    except BaseException:
        # A full disk or a kill mid-copy: leave nothing half-written behind.
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(models)
    return models / name


def same_bundle(a: Path, b: Path) -> bool:
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in (MODEL_FILE, META_FILE))


def _sequence(version: Path) -> int:
    return int(VERSION_NAME.match(version.name).group(1))  # type: ignore[union-attr]


def versions(models: Path) -> list[Path]:
    """Installed version dirs (``vNNNN-<utc time>-<sha256>``), newest first."""
    if not models.is_dir():
        return []
    found = [p for p in models.iterdir() if VERSION_NAME.match(p.name) and p.is_dir()]
    return sorted(found, key=_sequence, reverse=True)


def prune(models: Path, keep: int) -> None:
    """Drop old versions, staging leftovers of crashed installs and abandoned uploads."""
    pinned = {pointer(models.parent, CURRENT), pointer(models.parent, PREVIOUS)}
    cutoff = time.time() - STALE_INCOMING_SECONDS
    uploads = (models / INCOMING_DIR).glob("*")
    stale = [p for p in uploads if p.is_dir() and p.stat().st_mtime < cutoff]
    for old in [*versions(models)[keep:], *models.glob(".staging-*"), *stale]:
        if old.resolve() not in pinned:
            shutil.rmtree(old, ignore_errors=True)
