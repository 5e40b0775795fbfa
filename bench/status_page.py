"""The frame loop's frames/s with the status page on and polled (and its preview watched) vs off, and RSS.

Each variant runs in its own process on the same camera-like video (real face photos composed onto
real backgrounds, 640x480, MJPG, decoded per frame like a USB camera's), in rounds that rotate the
order, so a busy machine slows every variant alike. While a gate runs, this process plays the
page's clients from outside it: /status.json every second as the page does, /metrics every 5 s as
Prometheus would, and in ``page+preview`` the MJPEG stream read continuously. Add ``--also FILE``
(INI lines, e.g. an ``[mqtt]`` section) to measure the page together with other outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_frames
from bench_common import SCRATCH, bench_main, format_table, provenance, repo_relative, resolve_bundle

VARIANTS = {"off": "",
            "page": "[http]\nenabled = yes\nport = 0\n",
            "page+preview": "[http]\nenabled = yes\nport = 0\npreview = yes\n"}
RATIO_GOAL = 0.95  # the issue: frames/s with the page enabled within 5% of without
RSS_GOAL_MB = 120.0
STATUS_POLL_S, METRICS_POLL_S = 1.0, 5.0


def make_video(path: Path, scenes: int = 3, frames_per_scene: int = 100, seed: int = 0) -> Path:
    """An MJPG .avi of ``scenes`` composed scenes, one real face each, drifting like a person at the gate."""
    import cv2
    import numpy as np

    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    faces = bench_frames.load_faces(scenes, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (640, 480))
    for index, face in enumerate(faces):
        scene = bench_frames.compose_scene((640, 480), [face], rng, f"scene{index}", index)
        for t in range(frames_per_scene):
            writer.write(bench_frames.render(scene, t, rng)[0])
    writer.release()
    tmp.replace(path)
    return path


# The child: one gate, one variant --------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU seconds of this whole process (every thread: frame loop, interpreter, server, encoder)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class FrameClock:
    """An output that notes when the last frame left the loop (wall and CPU), so close() is not timed."""

    name = "frame-clock"

    def __init__(self) -> None:
        self.last, self.last_cpu = time.perf_counter(), cpu_seconds()

    def on_frame(self, tracks: Any, frame: Any) -> None:
        self.last, self.last_cpu = time.perf_counter(), cpu_seconds()

    def on_count(self, event: Any) -> None:
        """Counts are not timed separately."""

    def close(self) -> None:
        """Closed first (outputs close in reverse): let the clients stop before the server does."""
        print("END", flush=True)
        sys.stdin.readline()


def run_child(variant_ini: str, video: Path, model: Path) -> dict[str, Any]:
    """Run the gate on ``video`` once; prints its page URL, waits for 'go' on stdin, returns the numbers."""
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier

    with tempfile.TemporaryDirectory(prefix="maskipy-bench-page-") as tmp:
        config_path = Path(tmp) / "config.ini"
        config_path.write_text(f"[counts]\nstate_dir = {Path(tmp) / 'state'}\n{variant_ini}",
                               encoding="utf-8")
        runtime = EdgeRuntime(load_edge_config(config_path), source=str(video), model=model,
                              notifier=SystemdNotifier(""))
        page = next((o for o in runtime.outputs if o.name == "http"), None)
        clock = FrameClock()
        runtime.outputs.append(clock)
        print(f"URL {page.server.url if page else '-'}", flush=True)
        sys.stdin.readline()  # the clients are connected
        start, cpu_start = time.perf_counter(), cpu_seconds()
        runtime.run()
        seconds, cpu = clock.last - start, clock.last_cpu - cpu_start
        preview = page.preview if page else None
        frames = runtime.timer.frames
        return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 2),
                "cpu_ms_per_frame": round(1000.0 * cpu / frames, 3), "counted": sum(runtime.counts.values()),
                "preview_frames_encoded": preview.encoded if preview else 0,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}


# The parent: the page's clients and the rounds ---------------------------------------------------------


class PageClients:
    """Polls /status.json and /metrics like the page and Prometheus; with ``stream``, watches the preview."""

    def __init__(self, url: str, stream: bool) -> None:
        self.url, self.requests, self.errors, self.stream_bytes = url, 0, 0, 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._poll, daemon=True)]
        if stream:
            self.threads.append(threading.Thread(target=self._watch, daemon=True))
        for thread in self.threads:
            thread.start()

    def _poll(self) -> None:
        next_metrics = 0.0
        while not self.stop.is_set():
            paths = ["status.json"] + (["metrics"] if time.monotonic() >= next_metrics else [])
            if len(paths) == 2:
                next_metrics = time.monotonic() + METRICS_POLL_S
            for path in paths:
                try:
                    with urllib.request.urlopen(self.url + path, timeout=5) as response:
                        response.read()
                    self.requests += 1
                except OSError:
                    self.errors += 1
            self.stop.wait(STATUS_POLL_S)

    def _watch(self) -> None:
        try:
            with urllib.request.urlopen(self.url + "stream.mjpg", timeout=5) as response:
                while not self.stop.is_set():
                    chunk = response.read1(65536)
                    if not chunk:
                        return
                    self.stream_bytes += len(chunk)
        except OSError:
            return

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def run_variant(name: str, ini: str, video: Path, model: Path) -> dict[str, Any]:
    """One gate process of one variant, with its clients; its numbers."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", ini, "--video", str(video),
               "--model", str(model)]
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    url = child.stdout.readline().split()[1]
    clients = PageClients(url, stream="preview = yes" in ini) if url != "-" else None
    time.sleep(0.5 if clients else 0.0)  # the stream is open before the first frame
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "END"
    if clients:
        clients.close()
    child.stdin.write("stopped\n")
    child.stdin.flush()
    result = json.loads(child.stdout.readline())
    if clients:
        result.update(page_requests=clients.requests, page_errors=clients.errors,
                      stream_kib=round(clients.stream_bytes / 1024))
    child.wait(timeout=60)
    return {"variant": name, **result}


def run_benchmark(rounds: int, also: str = "", model: str | None = None, frames_per_scene: int = 100,
                  work: Path = SCRATCH) -> dict[str, Any]:
    """``rounds`` runs of each variant on a 3-scene video, the order rotated each round; numbers and goals."""
    load_before = os.getloadavg()
    bundle, origin = resolve_bundle(model)
    record = provenance(bundle, origin)  # the commit as the rounds start, not as they end
    video = make_video(work / f"status-page-video-{frames_per_scene}.avi", frames_per_scene=frames_per_scene)
    variants = {name: ini + (also if name != "off" else "") for name, ini in VARIANTS.items()}
    names = list(variants)
    runs = []
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            runs.append({"round": r + 1, **run_variant(name, variants[name], video, bundle)})
    summary = {}
    for name in names:
        mine = [x for x in runs if x["variant"] == name]
        cpu = statistics.median(x["cpu_ms_per_frame"] for x in mine)
        summary[name] = {"fps_median": round(statistics.median(x["fps"] for x in mine), 2),
                         "fps_runs": [x["fps"] for x in mine], "cpu_ms_per_frame_median": round(cpu, 3),
                         "peak_rss_mb": max(x["peak_rss_mb"] for x in mine)}
    base = summary["off"]
    for name in names[1:]:
        variant = summary[name]
        variant["fps_ratio_to_off"] = round(variant["fps_median"] / base["fps_median"], 4)
        # CPU per frame barely moves with other processes' load: the cost of the page itself, as the
        # frames/s it would leave a loop that has no spare core (a Pi with spare cores loses less).
        variant["cpu_ratio_to_off"] = round(base["cpu_ms_per_frame_median"]
                                            / variant["cpu_ms_per_frame_median"], 4)
    page = summary["page"]
    return {"benchmark": "status_page", "provenance": record,
            # Other processes' load moves wall-clock frames/s run to run; CPU per frame much less.
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "video": {"path": repo_relative(video), "frames": runs[0]["frames"], "size": "640x480",
                      "codec": "MJPG"},
            "clients": {"status_json_every_s": STATUS_POLL_S, "metrics_every_s": METRICS_POLL_S},
            "also": also, "rounds": rounds, "runs": runs, "summary": summary,
            "goals": {"fps_ratio_min": RATIO_GOAL, "fps_ratio_ok": page["fps_ratio_to_off"] >= RATIO_GOAL,
                      "cpu_ratio_ok": page["cpu_ratio_to_off"] >= RATIO_GOAL,
                      "peak_rss_mb_max": RSS_GOAL_MB, "rss_ok": page["peak_rss_mb"] <= RSS_GOAL_MB}}


def print_report(result: dict[str, Any]) -> None:
    rows = [[x["round"], x["variant"], x["frames"], x["seconds"], x["fps"], x["cpu_ms_per_frame"],
             x["peak_rss_mb"], x.get("page_requests", "-"), x.get("preview_frames_encoded", 0)]
            for x in result["runs"]]
    print(format_table(["round", "variant", "frames", "s", "frames/s", "CPU ms/frame", "peak RSS MB",
                        "page requests", "preview frames"], rows))
    print()
    rows = [[name, s["fps_median"], s.get("fps_ratio_to_off", 1.0), s["cpu_ms_per_frame_median"],
             s.get("cpu_ratio_to_off", 1.0), s["peak_rss_mb"]] for name, s in result["summary"].items()]
    print(format_table(["variant", "median frames/s", "ratio to off", "median CPU ms/frame",
                        "CPU ratio (off/variant)", "peak RSS MB"], rows))
    print(f"\ngoals: {result['goals']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant (order rotates)")
    parser.add_argument("--also", help="INI file whose sections are added to the page variants "
                        "(e.g. [mqtt] to measure page and MQTT together)")
    parser.add_argument("--model", help="bundle directory (default: the shipped default)")


def child_main(argv: Sequence[str]) -> int:
    """``--child INI --video V --model M``: one gate of one variant (run_variant starts it)."""
    parser = argparse.ArgumentParser(prog="status_page --child")
    parser.add_argument("child")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(run_child(args.child, args.video, args.model)), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        return child_main(args[1:])
    return bench_main(__file__, __doc__.splitlines()[0], add_arguments, lambda a: run_benchmark(
        a.rounds, Path(a.also).read_text(encoding="utf-8") if a.also else "", a.model), print_report,
        argv, exit_code=lambda r: 0 if r["goals"]["cpu_ratio_ok"] and r["goals"]["rss_ok"] else 1)


if __name__ == "__main__":
    sys.exit(main())
