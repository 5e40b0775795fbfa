"""What the status page shows: a thread-safe snapshot of the gate, kept up to date by the frame loop."""

from __future__ import annotations

import bisect
import logging
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..bundle import Bundle
from ..config import DetectorConfig, EdgeConfig
from ..outputs.counts import EVENTS_FILE, TOTALS_FILE, read_recent_events
from ..outputs.totals import day_of, read_totals
from ..sources.watchdog import SourceWatchdog
from ..stats import StageTimer
from ..tracking import CountEvent

log = logging.getLogger(__name__)

# Frames/s and stage times are averaged over windows this long; model and health refresh as often.
WINDOW_SECONDS = 2.0
# Upper bounds of the stage latency histogram, in seconds (a Pi 4 detect takes ~0.1 s).
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GateView(Protocol):
    """What the page reads of the running gate after each frame (``EdgeRuntime`` is one)."""

    config: EdgeConfig
    source_spec: str
    timer: StageTimer
    bundle: Bundle
    reloads: int
    reload_failures: int
    watchdog: SourceWatchdog | None
    outputs: list[Any]

    def problems(self) -> list[str]: ...


class StageHistogram:
    """Per-stage latency buckets, Prometheus style (cumulative at export), kept without any library."""

    def __init__(self, stages: Iterable[str], buckets: tuple[float, ...] = STAGE_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = {stage: [0] * (len(buckets) + 1) for stage in stages}
        self.sums = dict.fromkeys(self.counts, 0.0)

    def observe(self, stage: str, seconds: float) -> None:
        self.counts[stage][bisect.bisect_left(self.buckets, seconds)] += 1
        self.sums[stage] += seconds

    def export(self) -> dict[str, tuple[list[tuple[str, int]], float]]:
        """Per stage: cumulative ``(le, count)`` pairs ending with ``+Inf``, and the sum of seconds."""
        out = {}
        for stage, counts in self.counts.items():
            running, pairs = 0, []
            for bound, count in zip((*map(str, self.buckets), "+Inf"), counts, strict=True):
                running += count
                pairs.append((bound, running))
            out[stage] = (pairs, self.sums[stage])
        return out


class GateStatus:
    """Today's counts, the last people counted, the model, speed and health of one gate.

    The frame loop writes (``record_count`` per counted person, ``update_frame`` per frame); web
    server threads read ``snapshot()``. One lock, held for microseconds, so reading never slows the
    loop. Only time, class and confidence of a person are kept, never an image::

        status = GateStatus(config.classifier.labels, recent=20)
        status.restore(config.counts.state_dir)   # today's counts survive a restart
    """

    def __init__(self, labels: Iterable[str], *, recent: int = 20, stages: Iterable[str] = (),
                 window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.labels, self.window = tuple(labels), window
        self.gate = socket.gethostname()
        self._clock, self._wall_clock = clock, wall_clock
        self._lock = threading.Lock()
        self._started = clock()
        self.day = day_of(wall_clock())
        self.today = Counter(dict.fromkeys(self.labels, 0))
        self.per_hour = {label: [0] * 24 for label in self.labels}
        self.session_counts = Counter(dict.fromkeys(self.labels, 0))
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.histogram = StageHistogram(stages)
        self._previous_seconds = dict.fromkeys(self.histogram.counts, 0.0)
        self.frames = {"total": 0, "inferred": 0, "faces": 0, "fps": 0.0,
                       "stage_ms": dict.fromkeys(self.histogram.counts, 0.0)}
        self.model: dict[str, Any] = {}
        self.detector: dict[str, Any] = {}
        self.camera: dict[str, Any] = {"source": "", "reopens_total": 0, "reopens_last_minute": 0}
        self.problems: list[str] = []
        self.outputs: dict[str, dict[str, str | None]] = {}
        self._last_frame: float | None = None
        self._last_reopen = float("-inf")
        self._window: tuple[float, int, dict[str, float]] | None = None

    # The frame loop's side --------------------------------------------------------------------

    def record_count(self, event: CountEvent) -> None:
        """One counted person: today's totals, the hour's bar and the recent list."""
        with self._lock:
            self._roll_day(event.time)
            self._add(event.label, event.time)
            self.session_counts[event.label] += 1
            self.recent.appendleft({"time": event.time, "class": event.label,
                                    "confidence": round(event.confidence, 3), "track": event.track_id})

    def _add(self, label: str, wall_time: float, count: int = 1) -> None:
        self.today[label] += count
        hours = self.per_hour.setdefault(label, [0] * 24)
        hours[time.localtime(wall_time).tm_hour] += count

    def update_frame(self, runtime: GateView) -> None:
        """After each frame: stage latencies now; frames/s, model and health once per window."""
        now = self._clock()
        timer = runtime.timer
        with self._lock:
            self._last_frame = now
            self.frames.update(total=timer.frames, inferred=timer.inferred_frames, faces=timer.faces)
            for stage, total in timer.seconds.items():
                spent = total - self._previous_seconds.get(stage, 0.0)
                # A stage skipped this frame (no detection on in-between frames) is no sample.
                if spent > 0 and stage in self.histogram.counts:
                    self.histogram.observe(stage, spent)
                    self._previous_seconds[stage] = total
            if self._window is None or now - self._window[0] >= self.window:
                self._refresh(runtime, now)

    def _refresh(self, runtime: GateView, now: float) -> None:
        timer = runtime.timer
        if self._window is not None:
            start, frames, seconds = self._window
            done = timer.frames - frames
            self.frames["fps"] = round(done / (now - start), 2) if now > start else 0.0
            self.frames["stage_ms"] = {s: round(1000.0 * (v - seconds[s]) / done, 2) if done else 0.0
                                       for s, v in timer.seconds.items()}
        self._window = (now, timer.frames, dict(timer.seconds))
        self._refresh_model(runtime)
        self._refresh_camera(runtime)
        self._refresh_outputs(runtime)

    def _refresh_model(self, runtime: GateView) -> None:
        bundle = runtime.bundle
        if self.model.get("sha256") != bundle.sha256:
            self.model = {"sha256": bundle.sha256, "created_at": bundle.metadata.get("created_at"),
                          "labels": list(bundle.labels), "directory": str(bundle.directory),
                          "quantization": bundle.metadata.get("quantization")}
        self.model.update(reloads=runtime.reloads, reload_failures=runtime.reload_failures)
        detector = runtime.config.detector
        self.detector = {"type": detector.type, "models": detector_models(detector),
                         "every_n_frames": detector.every_n_frames}

    def _refresh_camera(self, runtime: GateView) -> None:
        watchdog, camera = runtime.watchdog, runtime.config.camera
        if watchdog is None:
            return
        # The watchdog keeps only the last minute's reopen times; count the new ones into a total.
        new = [t for t in watchdog.restarts if t > self._last_reopen]
        if new:
            self._last_reopen = new[-1]
        total = self.camera["reopens_total"] + len(new)
        self.camera = {"source": runtime.source_spec, "reopens_total": total,
                       "reopens_last_minute": len(watchdog.restarts),
                       "max_reopens_per_minute": camera.max_restarts_per_minute,
                       "stall_seconds": camera.stall_seconds}

    def _refresh_outputs(self, runtime: GateView) -> None:
        # What STATUS= says too: outputs with a ``degraded`` attribute (the count log, MQTT) and why.
        self.problems = list(runtime.problems())
        self.outputs = {}
        for output in runtime.outputs:
            if hasattr(output, "degraded"):
                why = output.degraded
                prefix = f"{output.name}: degraded, "
                self.outputs[output.name] = {
                    "state": "degraded" if why else "ok",
                    "why": why[len(prefix):] if why and why.startswith(prefix) else why}

    def _roll_day(self, wall_time: float) -> None:
        day = day_of(wall_time)
        if day != self.day:
            self.day = day
            self.today = Counter(dict.fromkeys(self.labels, 0))
            self.per_hour = {label: [0] * 24 for label in self.labels}

    # The readers' side --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as plain JSON-ready data (a copy: safe to use unlocked)."""
        now, wall = self._clock(), self._wall_clock()
        with self._lock:
            self._roll_day(wall)
            age = None if self._last_frame is None else round(now - self._last_frame, 2)
            camera = {**self.camera, "last_frame_age_s": age}
            frames = {**self.frames, "stage_ms": dict(self.frames["stage_ms"])}
            if age is not None and age > 2 * self.window:
                frames["fps"] = 0.0  # the loop stopped: the last window's rate is history
            return {"gate": self.gate, "time": wall, "date": self.day, "labels": list(self.labels),
                    "today": dict(self.today), "today_total": sum(self.today.values()),
                    "per_hour": {k: list(v) for k, v in self.per_hour.items()},
                    "session_counts": dict(self.session_counts), "recent": list(self.recent),
                    "model": dict(self.model), "detector": dict(self.detector),
                    "frames": frames,
                    "camera": camera, "health": health(camera),
                    "problems": list(self.problems),
                    "outputs": {name: dict(state) for name, state in self.outputs.items()},
                    "uptime_s": round(now - self._started, 1)}

    def stage_histograms(self) -> dict[str, tuple[list[tuple[str, int]], float]]:
        """The stage latency histogram, cumulative, for /metrics."""
        with self._lock:
            return self.histogram.export()

    # Start-up ------------------------------------------------------------------------------------

    def restore(self, state_dir: str | Path) -> None:
        """Today's counts, hours and recent people from the count log, so a restart does not zero the page.

        The per-class totals come from ``totals.json`` (what the count log keeps), the hours and
        the recent list from today's lines of ``events.jsonl``.
        """
        state = Path(state_dir)
        events = [e for e in read_recent_events(state / EVENTS_FILE) if day_of(e["time"]) == self.day]
        saved = read_totals(state / TOTALS_FILE)  # None (with a warning) when unusable
        totals = saved[0].get(self.day, {}) if saved is not None else {}
        with self._lock:
            for event in events:
                self._add(event["label"], event["time"])
                self.recent.appendleft({"time": event["time"], "class": event["label"],
                                        "confidence": round(float(event.get("confidence", 0.0)), 3),
                                        "track": event.get("track")})
            for label, count in totals.items():
                self.today[label] = max(self.today[label], count)
        if events or totals:
            log.info("status: restored today's counts %s", dict(self.today))


def build_status(config: EdgeConfig, stages: Iterable[str]) -> GateStatus | None:
    """The status the page shows, with today's counts restored; None when ``[http]`` is off."""
    if not config.http.enabled:
        return None
    status = GateStatus(config.classifier.labels, recent=config.http.recent, stages=stages)
    status.restore(config.counts.state_dir)
    return status


def detector_models(detector: DetectorConfig) -> list[str]:
    """What the configured detector runs: its model names, or its cascades for Haar."""
    if detector.type == "yunet":
        return [detector.yunet_model]
    if detector.type == "ssd":
        return list(detector.ssd_models)
    return [*detector.cascades, *(f"eyes: {c}" for c in detector.eye_cascades)]


def health(camera: Mapping[str, Any]) -> str:
    """``ok``; ``reopening``: the camera was reopened within a minute; ``stalled``; ``starting``."""
    age = camera.get("last_frame_age_s")
    if age is None:
        return "starting"
    if age >= camera.get("stall_seconds", float("inf")):
        return "stalled"
    return "reopening" if camera.get("reopens_last_minute") else "ok"
