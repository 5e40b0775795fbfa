"""The edge on 64-bit Raspberry Pi OS, emulated: `maskipy-edge run` on the scenes in an arm64 Bookworm
(Python 3.11, apt numpy 1.24) and Trixie (Python 3.13, apt numpy 2.2) userland under qemu-aarch64,
with PyPI's aarch64 wheels, must count the same people with the same labels as here (tests/arm64/smoke.sh
says how; about 15 s a suite once its downloads are cached under cache/arm64)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maskipy.edge.cli import main as edge_main

SMOKE = Path(__file__).resolve().parent / "arm64" / "smoke.sh"
# int8 outputs dequantized: a different CPU's kernels may round one step apart, never more.
CONFIDENCE_TOLERANCE = 0.02

pytestmark = pytest.mark.arm64


def read_events(state: Path) -> list[dict]:
    with open(state / "events.jsonl") as events:
        return [json.loads(line) for line in events]


@pytest.fixture(scope="module")
def x86_events(tmp_path_factory, scenes_dir: Path) -> list[dict]:
    state = tmp_path_factory.mktemp("x86-state")
    assert edge_main(["run", "--source", str(scenes_dir), "--state-dir", str(state)]) == 0
    return read_events(state)


@pytest.mark.parametrize("suite,cpu", [("bookworm", "cortex-a72"), ("trixie", "cortex-a53")])
def test_arm64_run_counts_like_x86(suite: str, cpu: str, scenes_dir: Path, x86_events: list[dict],
                                   tmp_path: Path) -> None:
    state = tmp_path / "arm64-state"
    env = dict(os.environ, HOST_PYTHON=sys.executable)
    done = subprocess.run(["bash", str(SMOKE), suite, str(state), str(scenes_dir), cpu], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    if done.returncode == 3:
        pytest.skip(f"arm64 {suite} not built: {done.stdout.strip()}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert f"arm64: aarch64 python {'3.11' if suite == 'bookworm' else '3.13'}" in done.stderr

    arm64 = read_events(state)
    assert len(x86_events) >= 10, "the scenes hold 11 faces: the x86 run must count most of them"
    assert len(arm64) == len(x86_events)
    for ours, theirs in zip(arm64, x86_events, strict=True):
        same = ("track", "label", "box")
        assert [ours[key] for key in same] == [theirs[key] for key in same]
        assert abs(ours["confidence"] - theirs["confidence"]) <= CONFIDENCE_TOLERANCE
    totals = json.loads((state / "totals.json").read_text())
    assert sum(totals["totals"].values()) == len(x86_events), totals


def test_an_unreachable_archive_is_a_stated_skip(tmp_path: Path, scenes_dir: Path) -> None:
    """No silent pass: without the Debian archive the script says why, with its own exit code."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apt-get").write_text("#!/bin/sh\necho 'E: Failed to fetch (no network here)' >&2\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", MASKIPY_ARM64_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(["bash", str(SMOKE), "bookworm", str(tmp_path / "state"), str(scenes_dir)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith("skip: apt cannot reach the Debian archive for trixie/amd64")
    assert "no network here" in done.stderr
