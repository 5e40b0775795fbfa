"""The child of ``memory_long.py --stages``: one gate's RSS after each import and build step, as JSON.

Nothing but the standard library is imported before the first reading, so each step's number is
what that step added: ``python bench/memory_stages.py INI VIDEO MODEL`` prints
``[["step", [rss_mb, hwm_mb]], ...]`` on its last line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FRAMES = 300
Step = tuple[str, tuple[float, float]]  # (what was done, (RSS MB, peak RSS MB) after it)
IMPORTS = (("numpy", "numpy"), ("OpenCV", "cv2"), ("LiteRT", "ai_edge_litert.interpreter"),
           ("paho-mqtt (and ssl)", "paho.mqtt.client"), ("prometheus_client", "prometheus_client"),
           ("maskipy.edge (runtime, web server)", "maskipy.edge.runtime"))


def rss_mb() -> tuple[float, float]:
    """This process's VmRSS and VmHWM (its peak so far: a step's passing allocations show there)."""
    with open("/proc/self/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith(("VmRSS:", "VmHWM:")))
    return int(fields["VmRSS"].split()[0]) / 1024.0, int(fields["VmHWM"].split()[0]) / 1024.0


class StageMarks:
    """An output (by duck type) that notes the RSS after the first frame and after ``FRAMES``."""

    name = "memory-stages"

    def __init__(self, steps: list[Step], rss: Callable[[], tuple[float, float]]) -> None:
        self.steps, self.rss, self.seen = steps, rss, 0

    def on_count(self, event: Any) -> None:
        """Counts are not measured."""

    def on_frame(self, tracks: Any, frame: Any) -> None:
        self.seen += 1
        if self.seen in (1, FRAMES):
            self.steps.append((f"after frame {self.seen}", self.rss()))

    def close(self) -> None:
        """Nothing to release."""


def measure(ini: str, video: str, model: str) -> list[Step]:
    """RSS and peak RSS (MB) after the interpreter, each import, building the gate, its first frame and
    ``FRAMES``."""
    steps = [("python", rss_mb())]
    for name, module in IMPORTS:
        __import__(module)
        steps.append((f"import {name}", rss_mb()))
    from maskipy.edge.config import load_edge_config
    from maskipy.edge.runtime import EdgeRuntime
    from maskipy.edge.service.sdnotify import SystemdNotifier

    with tempfile.TemporaryDirectory(prefix="maskipy-memory-") as tmp:
        config = Path(tmp) / "config.ini"
        config.write_text(f"[counts]\nstate_dir = {Path(tmp) / 'state'}\n{ini}", encoding="utf-8")
        runtime = EdgeRuntime(load_edge_config(config), source=video, model=model,
                              notifier=SystemdNotifier(""))
        steps.append(("detector, classifier (probe check), outputs, page, source built", rss_mb()))
        runtime.outputs.insert(0, StageMarks(steps, rss_mb))
        runtime.run(max_frames=FRAMES)
    return steps


def main(argv: Sequence[str] | None = None) -> int:
    ini, video, model = list(sys.argv[1:] if argv is None else argv)
    print(json.dumps(measure(ini, video, model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
