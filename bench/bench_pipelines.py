"""The two pipelines edge_pipeline.py compares, each timed per stage and reporting its face boxes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskipy.edge.config import EdgeConfig, load_edge_config
from maskipy.edge.preprocess import Box, CropSpec, crop_face, scale_pixels

SEED_CASCADE = "haarcascade_frontalface_default.xml"


def edge_config(state_dir: Path, overrides: dict[str, str] | None = None) -> EdgeConfig:
    """The shipped default config, counts written to ``state_dir``, plus ``section.key`` overrides.

    Overrides go through an INI file and ``load_edge_config``, so they are typed and validated
    exactly as a Pi owner's config.ini would be.
    """
    sections: dict[str, dict[str, str]] = {"counts": {"state_dir": str(state_dir)}}
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        sections.setdefault(section, {})[key] = value
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
                   for name, keys in sections.items())
    path = Path(state_dir) / "bench-config.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return load_edge_config(path)


def haar_reference_ms(frames: list[np.ndarray], width: int = 320, repeats: int = 3) -> float:
    """Median ms of one plain Haar pass (frontalface_default, 1.1, 5) on ``width``-wide grey frames.

    The workload the public Pi 4 figure describes, measured here so the Pi estimate scales from
    like to like whatever extra work the edge's detector config adds.
    """
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / SEED_CASCADE))
    samples = []
    for frame in frames:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        grey = cv2.resize(grey, (width, round(grey.shape[0] * width / grey.shape[1])),
                          interpolation=cv2.INTER_AREA)
        for _ in range(repeats):
            start = time.perf_counter()
            cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
            samples.append(1000.0 * (time.perf_counter() - start))
    return round(float(np.median(samples)), 3) if samples else 0.0


class SeedPipeline:
    """The seed's loop: Haar frontal default on the full-resolution grey frame, Keras predict per face.

    No downscale, no tracking: every frame is detected and every face classified with one
    ``model.predict`` call on a 224 crop (box only, nearest-neighbour resize, as the seed did).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / SEED_CASCADE))
        self.spec = CropSpec(margin=0.0, size=224, interpolation="nearest", colour_order="rgb")
        self.counts: dict[int, int] = {}
        self.events: list[tuple[int, Any]] = []  # the seed counted every face of every frame, no people
        self.classified = 0

    def start_stream(self) -> None:
        """The seed kept no state between frames."""

    def warm_up(self, frame: np.ndarray) -> None:
        """Untimed: Keras traces its predict function on the first call."""
        self.process(frame)
        self.model.predict(np.zeros((1, 224, 224, 3), np.float32), verbose=0)

    def process(self, frame: np.ndarray) -> tuple[dict[str, float], list[Box], bool]:
        """One frame: stage milliseconds, the face boxes found, and True (it always detects)."""
        ms: dict[str, float] = {}
        start = time.perf_counter()
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5)
        boxes: list[Box] = [tuple(int(v) for v in b) for b in found]
        ms["detect"], start = _lap(start)
        inputs = [scale_pixels(crop_face(frame, box, self.spec)[None]) for box in boxes]
        ms["preprocess"], start = _lap(start)
        probs = [self.model.predict(x, verbose=0)[0] for x in inputs]
        self.classified = len(inputs)
        ms["classify"], start = _lap(start)
        for p in probs:
            label = int(np.argmax(p))
            self.counts[label] = self.counts.get(label, 0) + 1
        ms["track_outputs"], _ = _lap(start)
        return ms, boxes, True


def _lap(start: float) -> tuple[float, float]:
    now = time.perf_counter()
    return 1000.0 * (now - start), now


class RecordingDetector:
    """Wraps the runtime's detector and keeps its last answer, so recall sees what the loop saw."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: list[Any] = []

    def detect(self, frame: np.ndarray) -> list[Any]:
        self.last = self.inner.detect(frame)
        return self.last


class EdgePipeline:
    """maskipy's edge loop as shipped: ``EdgeRuntime.process`` per frame, stage ms from its timer.

    Each stream gets a fresh runtime (a camera session: new tracker, frame counter from 0, so
    ``every_n_frames`` behaves as on a camera). On frames it does not detect, the faces it knows
    are its live tracks' boxes. ``events`` holds the stream's people counted by the runtime's own
    tracker, as (frame index, CountEvent); ``classified`` the faces it classified in the last frame.
    """

    def __init__(self, config: EdgeConfig, bundle: Path) -> None:
        self.config, self.bundle = config, bundle
        self.runtime: Any = None
        self.events: list[tuple[int, Any]] = []
        self.classified = 0

    def start_stream(self) -> None:
        from maskipy.edge.runtime import EdgeRuntime
        from maskipy.edge.service.sdnotify import SystemdNotifier
        from maskipy.edge.sources.replay import ReplaySource

        self.close()
        self.runtime = EdgeRuntime(self.config, model=self.bundle, notifier=SystemdNotifier(""),
                                   source_opener=lambda: ReplaySource([], name="bench"))
        self.runtime.detector = RecordingDetector(self.runtime.detector)
        self.events = []

    def process(self, frame: np.ndarray) -> tuple[dict[str, float], list[Box], bool]:
        """One frame through the runtime: stage milliseconds, the boxes it acts on, whether it detected."""
        timer = self.runtime.timer
        before, inferred_before, faces_before = dict(timer.seconds), timer.inferred_frames, timer.faces
        index = timer.frames
        start = time.perf_counter()
        events = self.runtime.process(frame)
        wall = 1000.0 * (time.perf_counter() - start)
        self.events.extend((index, event) for event in events)
        self.classified = timer.faces - faces_before
        ms = {k: 1000.0 * (timer.seconds[k] - before[k]) for k in timer.seconds if k != "capture"}
        # The loop's own bookkeeping (watchdog ping, status) is outside the timer's stages; count it
        # with track+outputs so the stages add up to the frame's wall time.
        ms["track_outputs"] += max(0.0, wall - sum(ms.values()))
        inferred = timer.inferred_frames > inferred_before
        if inferred:
            boxes = [d.box for d in self.runtime.detector.last]
        else:
            boxes = [t.box for t in self.runtime.tracker.tracks]
        return ms, boxes, inferred

    def warm_up(self, frame: np.ndarray) -> None:
        """Untimed: the interpreter allocates and the cascade pages in on the first frames."""
        self.start_stream()
        self.process(frame)
        size = self.runtime.bundle.crop_spec.size
        self.runtime.classifier.classify(np.zeros((1, size, size, 3), np.uint8))

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None


def default_config_dict(config: EdgeConfig) -> dict[str, Any]:
    """The detector, classifier and tracking settings the edge ran with, for the JSON report."""
    import dataclasses

    return {name: {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in dataclasses.asdict(getattr(config, name)).items()}
            for name in ("detector", "classifier", "tracking")}

