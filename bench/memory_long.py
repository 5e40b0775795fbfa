"""Where a long-running gate's resident memory goes, and whether it grows: page and MQTT off vs on.

Each run is a real ``maskipy-edge run`` process on a camera-like 640x480 MJPG video (real face
photos on real backgrounds, ``status_page.make_video``) played in a loop for ``--frames`` frames.
``page+mqtt`` turns on the status page, polled as the page and Prometheus do (/status.json every
second, /metrics every 5 s), and MQTT to a real local Mosquitto. While the gate runs, this process
reads its /proc status (VmRSS, VmHWM, RssAnon, RssFile, threads, huge pages) every 0.1 s and its
smaps every 2 s and whenever RSS rose by half a MB, so the report says where the memory sits at the
peak (shared libraries by package, the malloc heap, other anonymous maps) and how much it grew after
the first quarter of the run.
Peak RSS is the process's own: ``ru_maxrss`` from ``wait4`` on exactly that child, checked against
this process's own peak (Linux carries a parent's RSS over to a child's ru_maxrss) and against the
VmHWM sampled from /proc. ``--stages`` adds one gate process that reports its RSS after each import
and build step and after its first frames.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import SCRATCH, bench_main, format_table, provenance, repo_relative, resolve_bundle

BENCH = Path(__file__).resolve().parent

GOAL_MB = 110.0  # issue #20: the gate's peak RSS with the page and MQTT on
SAMPLE_S, SMAPS_S, SMAPS_STEP_KB = 0.1, 2.0, 512
STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")
VARIANTS = ("off", "page+mqtt")
VIDEO = SCRATCH / "memory-long-video-50.avi"  # 3 scenes of 50 frames, played in a loop


def variant_ini(variant: str, http_port: int, mqtt_port: int | None) -> str:
    """The gate's config for one variant: a looped video, and the page and MQTT when asked."""
    ini = "[camera]\nloop = yes\n"
    if variant == "page+mqtt":
        ini += (f"[http]\nenabled = yes\nport = {http_port}\n"
                f"[mqtt]\nenabled = yes\nhost = 127.0.0.1\nport = {mqtt_port}\n")
    return ini


# What /proc says about the gate ----------------------------------------------------------------------


def read_status(pid: int) -> dict[str, int]:
    """The /proc/<pid>/status fields in STATUS_KEYS (kB, threads a count) and AnonHugePages (kB)."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in STATUS_KEYS:
                fields[key] = int(value.split()[0])
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as rollup:
        for line in rollup:
            if line.startswith("AnonHugePages:"):
                fields["AnonHugePages"] = int(line.split()[1])
    return fields


def mapping_group(name: str) -> str:
    """The row a mapping's RSS is added to: a package's shared libraries, the heap, or other memory."""
    if name in ("", "[anon]"):
        return "anonymous maps (threads' malloc arenas, Python's object arenas, model buffers, stacks)"
    if name == "[heap]":
        return "malloc heap (main arena)"
    if "/site-packages/" in name:
        package = name.split("/site-packages/")[1].split("/")[0]
        return f"{package.removesuffix('.libs')} (shared libraries)"
    if "libpython" in name or "/lib-dynload/" in name:
        return "python (interpreter and stdlib extensions)"
    if name.startswith("/"):
        return f"{Path(name).name.split('.so')[0]} (system library)"
    return name


def smaps_breakdown(pid: int) -> dict[str, int]:
    """RSS in kB per ``mapping_group``, from /proc/<pid>/smaps."""
    groups: Counter[str] = Counter()
    name = ""
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            parts = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = parts[5] if len(parts) > 5 else ""
            elif parts[0] == "Rss:":
                groups[mapping_group(name)] += int(parts[1])
    return dict(groups)


def mb(kb: float) -> float:
    return round(kb / 1024.0, 1)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def own_hwm_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


# One gate process ------------------------------------------------------------------------------------


def run_gate(variant: str, video: Path, model: Path, frames: int, work: Path) -> dict[str, Any]:
    """Run one gate to ``frames`` frames, sampling it; its peak, growth and where its memory sits."""
    from mosquitto import Mosquitto, free_port
    from status_page import PageClients

    state = work / f"state-{variant}-{time.monotonic_ns()}"
    broker = Mosquitto(state.with_name(state.name + "-broker")) if variant != "off" else None
    if broker is not None:
        broker.start()
    http_port = free_port()
    config = state.with_suffix(".ini")
    config.write_text(variant_ini(variant, http_port, broker.port if broker else None), encoding="utf-8")
    command = [sys.executable, "-m", "maskipy.edge.cli", "run", "--config", str(config), "--source",
               str(video), "--model", str(model), "--state-dir", str(state), "--max-frames", str(frames)]
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    samples: list[dict[str, float]] = []
    breakdown: dict[str, int] = {}
    parent_hwm = own_hwm_kb()
    start = time.monotonic()
    with open(state.with_suffix(".log"), "w", encoding="utf-8") as log:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    clients = None  # the page is polled once it listens (a poll refused before that is not its error)
    next_smaps, breakdown_rss, usage, status = start, 0, None, 0
    try:
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if broker is not None and clients is None and listening(http_port):
                clients = PageClients(f"http://127.0.0.1:{http_port}/", stream=False)
            try:
                samples.append({"t": round(now - start, 2), **read_status(child.pid)})
                # Where the memory sits near the peak: read again whenever RSS passed the last reading.
                rss = samples[-1].get("VmRSS", 0)
                if now >= next_smaps or rss > breakdown_rss + SMAPS_STEP_KB:
                    breakdown, breakdown_rss, next_smaps = smaps_breakdown(child.pid), rss, now + SMAPS_S
            except (OSError, ValueError, StopIteration):
                pass  # the process is on its way out
            time.sleep(SAMPLE_S)
    finally:
        if clients is not None:
            clients.close()
        if broker is not None:
            broker.stop()
    wall = time.monotonic() - start
    exit_code = os.waitstatus_to_exitcode(status)
    return summarize_run(variant, frames, wall, exit_code, samples, breakdown, usage.ru_maxrss, parent_hwm,
                         clients, state.with_suffix(".log"))


def summarize_run(variant: str, frames: int, wall: float, exit_code: int, samples: list[dict[str, float]],
                  breakdown: dict[str, int], ru_maxrss_kb: int, parent_hwm_kb: int, clients: Any,
                  log: Path) -> dict[str, Any]:
    """Peak, growth after the first quarter of the run, threads, huge pages and the smaps rows."""
    running = [s for s in samples if s.get("Threads", 0) > 1 and "VmRSS" in s]
    sampled_hwm = max((s["VmHWM"] for s in running), default=0)
    # ru_maxrss is at least the bench's own peak (carried over at fork/exec): trust it only above that.
    peak_kb = ru_maxrss_kb if ru_maxrss_kb > parent_hwm_kb else sampled_hwm
    quarter = running[len(running) // 4] if running else {}
    last = running[-1] if running else {}
    result = {"variant": variant, "frames": frames, "exit_code": exit_code, "wall_s": round(wall, 1),
              "fps": round(frames / wall, 1) if wall else 0.0, "peak_rss_mb": mb(peak_kb),
              "ru_maxrss_mb": mb(ru_maxrss_kb), "sampled_hwm_mb": mb(sampled_hwm),
              "bench_process_hwm_mb": mb(parent_hwm_kb),
              "rss_at_quarter_mb": mb(quarter.get("VmRSS", 0)), "rss_at_end_mb": mb(last.get("VmRSS", 0)),
              "growth_after_quarter_mb": mb(last.get("VmRSS", 0) - quarter.get("VmRSS", 0)),
              "anon_at_end_mb": mb(last.get("RssAnon", 0)), "file_at_end_mb": mb(last.get("RssFile", 0)),
              "huge_pages_peak_mb": mb(max((s.get("AnonHugePages", 0) for s in running), default=0)),
              "threads_peak": max((int(s["Threads"]) for s in running), default=0),
              "samples": len(running),
              "series": [{"t": s["t"], "rss_mb": mb(s["VmRSS"]), "anon_mb": mb(s["RssAnon"])}
                         for s in running[:: max(1, len(running) // 40)]],
              "where_mb": {k: mb(v) for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1])},
              "stderr_tail": log.read_text(encoding="utf-8", errors="replace").splitlines()[-3:]}
    if clients is not None:
        result.update(page_requests=clients.requests, page_errors=clients.errors)
    return result


# --stages: one gate reporting its own RSS after each step (memory_stages.py) -------------------------


def run_stages(video: Path, model: Path, work: Path) -> list[dict[str, Any]]:
    """The --stages table: one page+mqtt gate process, RSS after each step and what each step added."""
    from mosquitto import Mosquitto, free_port

    broker = Mosquitto(work / "stages-broker")
    broker.start()
    try:
        ini = variant_ini("page+mqtt", free_port(), broker.port)
        child = [sys.executable, str(BENCH / "memory_stages.py"), ini, str(video), str(model)]
        out = subprocess.run(child, capture_output=True, text=True, check=True,
                             env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}).stdout
    finally:
        broker.stop()
    steps = json.loads(out.strip().splitlines()[-1])
    before = [0.0] + [rss for _, (rss, _) in steps[:-1]]
    return [{"step": name, "rss_mb": round(rss, 1), "added_mb": round(rss - previous, 1),
             "hwm_mb": round(hwm, 1)} for (name, (rss, hwm)), previous in zip(steps, before, strict=True)]


def make_video() -> Path:
    """The looped video, made once (in a child: composing its scenes loads models this process must not
    hold, or the gates' ru_maxrss would carry this process's peak over)."""
    if not VIDEO.is_file():
        code = ("import pathlib, sys; sys.path.insert(0, sys.argv[1]); import status_page; "
                "status_page.make_video(pathlib.Path(sys.argv[2]), 3, 50)")
        subprocess.run([sys.executable, "-c", code, str(BENCH), str(VIDEO)], check=True)
    return VIDEO


# The benchmark -------------------------------------------------------------------------------------------


def run_benchmark(*, frames: int = 3000, runs: int = 1, bundle: str | None = None, stages: bool = False,
                  work: Path | None = None, variants: Sequence[str] = VARIANTS) -> dict[str, Any]:
    """``runs`` rounds of every variant, one after another (never in parallel: they share the cores)."""
    model, origin = resolve_bundle(bundle)
    record = provenance(model, origin)
    video = make_video()
    work = Path(work or tempfile.mkdtemp(prefix="maskipy-memory-long-"))
    results = [run_gate(variant, video, Path(model), frames, work)
               for _ in range(runs) for variant in variants]
    peaks = {v: max(r["peak_rss_mb"] for r in results if r["variant"] == v) for v in variants}
    on = peaks.get("page+mqtt")
    result = {"benchmark": "memory_long", "video": repo_relative(video), "video_frames": 150,
              "frames": frames, "runs": results, "peak_rss_mb": peaks,
              "goal": {"peak_rss_mb": GOAL_MB, "variant": "page+mqtt",
                       "ok": on is not None and on <= GOAL_MB},
              "all_exit_zero": all(r["exit_code"] == 0 for r in results), "provenance": record}
    if stages:
        result["stages"] = run_stages(video, Path(model), work)
    return result


def print_report(result: dict[str, Any]) -> None:
    """Runs, where the memory sits at the end of the page+mqtt run, and the stages when measured."""
    rows = [[r["variant"], r["frames"], r["exit_code"], r["fps"], r["peak_rss_mb"], r["rss_at_quarter_mb"],
             r["rss_at_end_mb"], r["growth_after_quarter_mb"], r["huge_pages_peak_mb"], r["threads_peak"]]
            for r in result["runs"]]
    print(format_table(["variant", "frames", "exit", "frames/s", "peak RSS MB", "RSS at 1/4", "RSS at end",
                        "growth", "huge pages MB", "threads"], rows))
    last_on = next((r for r in reversed(result["runs"]) if r["variant"] == "page+mqtt"), result["runs"][-1])
    print(f"\nwhere the {last_on['variant']} gate's RSS sits at its peak (MB, /proc/PID/smaps):")
    print(format_table(["mappings", "MB"], [[k, v] for k, v in last_on["where_mb"].items() if v >= 0.5]))
    if "stages" in result:
        print("\none page+mqtt gate, step by step (RSS MB after each step, what it added, peak RSS so far):")
        print(format_table(["step", "RSS MB", "added", "peak so far"],
                           [[s["step"], s["rss_mb"], s["added_mb"], s["hwm_mb"]] for s in result["stages"]]))
    print(f"\npeak RSS {result['peak_rss_mb']} MB; goal page+mqtt <= {GOAL_MB} MB: {result['goal']['ok']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=3000, help="frames per gate run (the video loops)")
    parser.add_argument("--runs", type=int, default=1, help="rounds of every variant")
    parser.add_argument("--quick", action="store_true", help="600 frames")
    parser.add_argument("--stages", action="store_true", help="also RSS after each import and build step")
    parser.add_argument("--model", help="bundle directory (default: the shipped default)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print, write JSON; 1 when a gate did not exit 0."""
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, lambda a: run_benchmark(
        frames=600 if a.quick else a.frames, runs=a.runs, bundle=a.model, stages=a.stages),
        print_report, argv, exit_code=lambda r: 0 if r["all_exit_zero"] else 1)


if __name__ == "__main__":
    sys.exit(main())
