"""The gate's frame loop: capture, detect, crop, classify, track and drive the outputs."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .classifier.live import LiveModel
from .config import EdgeConfig
from .detectors import build_detector
from .outputs import Output, build_outputs, close_outputs
from .pipeline import crop_faces, to_observations
from .service.heartbeat import Heartbeat, heartbeat_path
from .service.sdnotify import SystemdNotifier
from .sources import FrameSource, open_source
from .sources.watchdog import SourceWatchdog
from .stats import STAGES, StageTimer
from .tracking import CountEvent, Observation, Tracker
from .web.output import StatusPageOutput
from .web.status import build_status

log = logging.getLogger(__name__)

STATUS_SECONDS = 10.0


class EdgeRuntime:
    """The gate: detector, classifier, source and outputs built once, then the frame loop.

    ``run()`` sends READY=1 (everything is up by then), loops until the source ends, ``max_frames``,
    or ``stop()``, and returns this run's counts per class. ``request_reload()`` (SIGHUP) swaps the
    model between frames and keeps the old one if the new one fails. Timings: ``timer.as_dict()``::

        runtime = EdgeRuntime(load_edge_config("config.ini"), source="demo/")
        counts = runtime.run(max_frames=100)
    """

    bundle: Bundle = property(lambda self: self.model.bundle)  # type: ignore[assignment]
    classifier: Any = property(lambda self: self.model.classifier)
    reloads: int = property(lambda self: self.model.reloads)  # type: ignore[assignment]
    reload_failures: int = property(lambda self: self.model.reload_failures)  # type: ignore[assignment]

    def __init__(self, config: EdgeConfig, *, source: str | None = None, model: str | Path | None = None,
                 pin_factory: Any = None, notifier: SystemdNotifier | None = None,
                 source_opener: Callable[[], FrameSource] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.source_spec = source or config.camera.source
        self.notifier = notifier if notifier is not None else SystemdNotifier()
        self._clock, self._wall_clock = clock, wall_clock
        self.timer, self.counts = StageTimer(), Counter()
        self._stop, self._reload = threading.Event(), threading.Event()
        self._closed, self._last_status = False, float("-inf")
        self.outputs: list[Output] = []
        self.watchdog: SourceWatchdog | None = None
        self.detector = build_detector(config.detector)
        self.model = LiveModel(config, model)
        self.status = build_status(config, STAGES)  # what the [http] status page shows; None when off
        try:
            self.outputs = build_outputs(config, pin_factory)
            if self.status is not None:  # last, so its /metrics shows the other outputs' numbers
                self.outputs.append(StatusPageOutput(config.http, self.status, peers=list(self.outputs)))
            opener = source_opener or (lambda: open_source(self.source_spec, config.camera))
            self.watchdog = SourceWatchdog.for_camera(  # its sleeps are cut short by SIGTERM
                opener, config.camera, Heartbeat(heartbeat_path(config.counts.state_dir)), clock=clock,
                sleep=self._stop.wait)
        except BaseException:
            self.close()
            raise
        self.stills = self.watchdog.source is not None and self.watchdog.source.stills
        if self.stills:
            log.info("%s: still images, each face counted from its own frame", self.source_spec)
        self.tracker = Tracker.for_source(config, stills=self.stills)

    def run(self, max_frames: int | None = None) -> dict[str, int]:
        """The frame loop; closes everything on the way out and returns this run's counts."""
        self.notifier.ready(self.status_line())
        log.info("%s: running with model %s (%s)", self.source_spec, self.bundle.directory,
                 self.bundle.sha256[:12])
        if self.model.deployed_since_start():
            log.info("model: a bundle was deployed while starting; loading it")
            self.request_reload()
        try:
            while not self._stop.is_set() and (max_frames is None or self.timer.frames < max_frames):
                # The loop is alive even when the camera is not: ping, and let the watchdog recover.
                self._ping(self._clock())
                if self._reload.is_set():
                    self.reload_model()
                frame = self.capture()
                if frame is not None:
                    self.process(frame)
                elif self.watchdog.exhausted:
                    log.info("%s: end of source after %d frames", self.source_spec, self.timer.frames)
                    break
        finally:
            self.close()
        return dict(self.counts)

    def capture(self) -> np.ndarray | None:
        """The next frame through the watchdog (which reopens a stalled source)."""
        with self.timer.stage("capture"):
            return self.watchdog.read()

    def process(self, frame: np.ndarray) -> list[CountEvent]:
        """Run one frame through the pipeline and the outputs; the people counted in it."""
        now = self._clock()
        self._ping(now)
        # People are followed in the scene's time: a recording's own, else now.
        recorded = self.watchdog.frame_time if self.watchdog is not None else None
        scene_time = now if recorded is None else recorded
        infer = self.stills or self.timer.frames % self.config.detector.every_n_frames == 0
        self.timer.frames += 1
        observations = self.observe(frame) if infer else None
        with self.timer.stage("track_outputs"):
            if self.stills:
                self.tracker.clear()
            if observations is None:
                self.tracker.expire(scene_time)
                events: list[CountEvent] = []
            else:
                events = self.tracker.update(observations, scene_time, self._wall_clock())
            self._emit(frame, events)
        if self.status is not None:
            self.status.update_frame(self)
        return events

    def observe(self, frame: np.ndarray) -> list[Observation]:
        """Detect, crop and classify the faces of one frame."""
        self.timer.inferred_frames += 1
        with self.timer.stage("detect"):
            detections = self.detector.detect(frame)
        with self.timer.stage("preprocess"):
            boxes, crops = crop_faces(frame, detections, self.bundle)
        if not boxes:
            return []
        self.timer.faces += len(boxes)
        with self.timer.stage("classify"):
            probs = self.classifier.classify(crops)
        return to_observations(boxes, probs, self.classifier.labels, self.classifier.choose)

    def _emit(self, frame: np.ndarray, events: list[CountEvent]) -> None:
        for event in events:
            self.counts[event.label] += 1
            log.info("%s: counted person #%d as %s (%.2f)", self.source_spec, event.track_id,
                     event.label, event.confidence)
            for output in self.outputs:
                output.on_count(event)
        for output in self.outputs:
            output.on_frame(self.tracker.tracks, frame)

    def _ping(self, now: float) -> None:
        # WATCHDOG=1 only from here: a frame loop stuck anywhere stops the pings and systemd acts.
        self.notifier.watchdog(now)
        if now - self._last_status >= STATUS_SECONDS:
            self._last_status = now
            self.notifier.status(self.status_line())

    def status_line(self) -> str:
        counted = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "nobody yet"
        line = f"{self.source_spec}: {self.timer.frames} frames; counted {counted}"
        problems = self.problems()
        return f"DEGRADED ({'; '.join(problems)}) {line}" if problems else line

    def problems(self) -> list[str]:
        """What is wrong but not fatal (a fallback model, counts kept only in memory); [] when healthy."""
        found = [self.model.problem] if self.model.problem else []
        return found + [o.degraded for o in self.outputs if getattr(o, "degraded", None)]

    def request_reload(self) -> None:
        """Ask the loop to reload the model before its next frame (the SIGHUP handler)."""
        self._reload.set()

    def reload_model(self) -> bool:
        """Load the model again (a new bundle may have been deployed); keep the old one on failure."""
        self._reload.clear()
        self.notifier.reloading(self._clock)
        ok = self.model.reload()
        self.notifier.ready(self.status_line())
        return ok

    @property
    def stop_requested(self) -> bool:
        """Whether stop() ended the run (SIGTERM, Ctrl-C), rather than the source or max_frames."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the loop to finish after the current frame (SIGTERM, Ctrl-C)."""
        self._stop.set()

    def close(self) -> None:
        """Flush counts, release GPIO and the source; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.notifier.stopping()
        close_outputs(self.outputs)
        if self.watchdog is not None:
            self.watchdog.close()
        if self.timer.frames:  # a run that never got a frame has no timings worth a line
            stages = self.timer.as_dict()["ms_per_frame"]
            log.info("timings (ms per frame): %s", ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
        self.notifier.close()
