"""Peak RSS of a real ``maskipy-edge run`` process and its time from start to the first decision."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import DATA, bench_main, format_table, provenance, repo_relative, resolve_bundle

RSS_BAR_MB = 250.0
FIRST_DECISION_BAR_S = 3.0
# Log lines of maskipy-edge that mark start-up milestones (runtime.py logs them at INFO).
READY_MARK = "running with model"
COUNT_MARK = "counted person"


def edge_command(source: Path, model: Path, state: Path, max_frames: int | None) -> list[str]:
    """The ``maskipy-edge run`` command line, run with this Python so the same install is measured."""
    command = [sys.executable, "-m", "maskipy.edge.cli", "run", "--source", str(source),
               "--model", str(model), "--state-dir", str(state)]
    return command + (["--max-frames", str(max_frames)] if max_frames else [])


def read_lines(stream: Any, start: float, stamped: list[tuple[float, str]]) -> None:
    """Stamp each line of the child's stderr with seconds since the child was started."""
    for line in iter(stream.readline, ""):
        stamped.append((time.time() - start, line.rstrip()))


def first_event_seconds(state: Path, start: float) -> float | None:
    """Seconds from process start to the first counted person, from events.jsonl's wall time."""
    path = state / "events.jsonl"
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return round(json.loads(lines[0])["time"] - start, 3) if lines else None


def run_once(source: Path, model: Path, max_frames: int | None = None) -> dict[str, Any]:
    """Start one edge process, wait for it, and return its peak RSS and start-up milestones.

    Peak RSS comes from ``wait4`` on exactly this child (ru_maxrss, KiB on Linux), so nothing
    else the parent ran is mixed in. The first decision is the first counted person: the event's
    wall time in events.jsonl, cross-checked by when its log line reached us.
    """
    with tempfile.TemporaryDirectory(prefix="maskipy-startup-") as tmp:
        state = Path(tmp) / "state"
        env = {**os.environ, "GPIOZERO_PIN_FACTORY": os.environ.get("GPIOZERO_PIN_FACTORY", "mock")}
        stamped: list[tuple[float, str]] = []
        start = time.time()
        child = subprocess.Popen(edge_command(source, model, state, max_frames), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        reader = threading.Thread(target=read_lines, args=(child.stderr, start, stamped), daemon=True)
        reader.start()
        output = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.time() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        reader.join(timeout=5)
        first_event = first_event_seconds(state, start)
    return {"exit_code": child.returncode, "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1),
            "wall_s": round(wall, 3), "ready_s": _first(stamped, READY_MARK),
            "first_decision_s": first_event, "first_count_log_s": _first(stamped, COUNT_MARK),
            "stdout": output.strip().splitlines()[-5:], "stderr_tail": [line for _, line in stamped[-5:]]}


def _first(stamped: list[tuple[float, str]], mark: str) -> float | None:
    return next((round(t, 3) for t, line in stamped if mark in line), None)


def run_benchmark(*, runs: int = 3, source: Path | None = None, bundle: Path | None = None,
                  max_frames: int | None = None) -> dict[str, Any]:
    """``runs`` cold starts; worst RSS and median start-up against the bars."""
    model, origin = resolve_bundle(bundle)
    record = provenance(model, origin)
    source = source or DATA / "scenes"
    if not Path(source).is_dir():
        raise SystemExit(f"{source}: no such folder; pass --source a folder of photos with faces")
    results = [run_once(Path(source), model, max_frames) for _ in range(runs)]
    decisions = [r["first_decision_s"] for r in results if r["first_decision_s"] is not None]
    peak = max(r["peak_rss_mb"] for r in results)
    first = round(statistics.median(decisions), 3) if decisions else None
    # The child's command line as one would type it: python, repo-relative paths.
    child = ["python", *map(repo_relative, edge_command(Path(source).resolve(), Path(model).resolve(),
                                                         Path("STATE"), max_frames)[1:])]
    return {"benchmark": "memory_startup", "source": repo_relative(Path(source).resolve()),
            "edge_command": child, "runs": results,
            "peak_rss_mb": peak, "first_decision_s": first,
            "bars": {"peak_rss_mb": RSS_BAR_MB, "rss_ok": peak <= RSS_BAR_MB,
                     "first_decision_s": FIRST_DECISION_BAR_S,
                     "first_decision_ok": first is not None and first <= FIRST_DECISION_BAR_S,
                     "all_exit_zero": all(r["exit_code"] == 0 for r in results)},
            "provenance": record}


def print_report(result: dict[str, Any]) -> None:
    """One row per run, then the verdict against the bars."""
    rows = [[i + 1, r["exit_code"], r["peak_rss_mb"], r["ready_s"], r["first_decision_s"],
             r["first_count_log_s"], r["wall_s"]] for i, r in enumerate(result["runs"])]
    print(format_table(["run", "exit", "peak RSS MB", "ready s", "first decision s", "first count log s",
                        "wall s"], rows))
    print(f"\npeak RSS {result['peak_rss_mb']} MB (bar {RSS_BAR_MB}), first decision "
          f"{result['first_decision_s']} s (bar {FIRST_DECISION_BAR_S}): {result['bars']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="one run instead of three")
    parser.add_argument("--runs", type=int, default=3, help="cold starts to measure")
    parser.add_argument("--source", help="image folder to run on (default: ../shared/data/scenes)")
    parser.add_argument("--model", help="bundle directory (default: the shipped default)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, write JSON; returns the exit code (1 when a run did not exit 0)."""
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, lambda a: run_benchmark(
        runs=1 if a.quick else a.runs, bundle=a.model, source=Path(a.source) if a.source else None),
        print_report, argv, exit_code=lambda r: 0 if r["bars"]["all_exit_zero"] else 1)


if __name__ == "__main__":
    sys.exit(main())
