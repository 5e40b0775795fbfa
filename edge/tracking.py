"""Follow faces across frames by box overlap, vote each person's class, count each person once."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field

from .config import EdgeConfig, TrackingConfig
from .geometry import iou
from .preprocess import Box


@dataclass(frozen=True)
class Observation:
    """One classified face box in one frame."""

    box: Box
    label: str
    confidence: float


@dataclass(frozen=True)
class CountEvent:
    """A person counted once: when (``time``, from the caller's clock), which track, what class."""

    time: float
    track_id: int
    label: str
    confidence: float
    box: Box
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "time": self.time, "track": self.track_id, "label": self.label,
                "confidence": round(self.confidence, 4), "box": list(self.box)}


@dataclass
class Track:
    """One person at the gate: their latest box, their last votes, and whether they were counted."""

    id: int
    box: Box
    first_seen: float
    last_seen: float
    votes: deque[tuple[str, float]]
    label: str | None = None
    confidence: float = 0.0
    counted: bool = False
    hits: int = field(default=0)

    def tally(self) -> tuple[str, int, float] | None:
        """The leading label of the vote window, its vote count and mean confidence."""
        if not self.votes:
            return None
        counts = Counter(label for label, _ in self.votes)
        means = {label: sum(c for lab, c in self.votes if lab == label) / n for label, n in counts.items()}
        # Ties go to the more confident label, then the name, so the result never depends on order.
        label = max(counts, key=lambda lab: (counts[lab], means[lab], lab))
        return label, counts[label], means[label]


class Tracker:
    """Greedy IoU matching of a frame's observations to live tracks.

    A track's ``label`` settles once one class holds ``min_votes`` of its last ``vote_frames``
    votes; the person is counted (a CountEvent) the first time that happens, never again. Boxes
    classified as ``reject_label`` are dropped; votes under ``min_confidence`` move the box but do
    not vote. Time is always passed in, so tests are deterministic::

        tracker = Tracker(config.tracking, reject_label="not_face")
        events = tracker.update(observations, now=time.monotonic(), wall_time=time.time())
    """

    @classmethod
    def for_source(cls, config: EdgeConfig, *, stills: bool = False) -> Tracker:
        """The gate's tracker; for still images (unrelated photos: nothing to follow or vote across)
        each face is judged on its own."""
        c = config.classifier
        tracker = cls(config.tracking, reject_label=c.reject_label, min_confidence=c.min_confidence)
        return tracker.with_config(vote_frames=1, min_votes=1) if stills else tracker

    def __init__(self, config: TrackingConfig, *, reject_label: str = "not_face",
                 min_confidence: float = 0.0) -> None:
        self.config = config
        self.reject_label = reject_label
        self.min_confidence = min_confidence
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def with_config(self, **changes: object) -> Tracker:
        """A fresh tracker with some ``[tracking]`` keys changed."""
        return Tracker(dataclasses.replace(self.config, **changes), reject_label=self.reject_label,
                       min_confidence=self.min_confidence)

    def expire(self, now: float) -> None:
        """Forget tracks unseen for more than ``expire_seconds``, and all of them when time went back
        (a recording started again: its people are not the ones before)."""
        limit = self.config.expire_seconds
        self.tracks = [t for t in self.tracks if 0.0 <= now - t.last_seen <= limit]

    def clear(self) -> None:
        """Forget every track (between unrelated photos)."""
        self.tracks = []

    def update(self, observations: list[Observation], now: float,
               wall_time: float | None = None) -> list[CountEvent]:
        """Match, vote and count one frame's observations; the people counted in this frame."""
        self.expire(now)
        faces = [o for o in observations if o.label != self.reject_label]
        events: list[CountEvent] = []
        for obs, track in self._match(faces):
            if track is None:
                track = Track(next(self._ids), obs.box, now, now, deque(maxlen=self.config.vote_frames))
                self.tracks.append(track)
            event = self._observe(track, obs, now, now if wall_time is None else wall_time)
            if event is not None:
                events.append(event)
        return events

    def _match(self, faces: list[Observation]) -> list[tuple[Observation, Track | None]]:
        pairs = sorted(((iou(obs.box, track.box), i, j) for i, obs in enumerate(faces)
                        for j, track in enumerate(self.tracks)), reverse=True)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < self.config.iou_threshold:
                break
            if i not in matched and j not in used:
                matched[i] = self.tracks[j]
                used.add(j)
        return [(obs, matched.get(i)) for i, obs in enumerate(faces)]

    def _observe(self, track: Track, obs: Observation, now: float, wall: float) -> CountEvent | None:
        track.box, track.last_seen = obs.box, now
        track.hits += 1
        if obs.confidence < self.min_confidence:
            return None
        track.votes.append((obs.label, obs.confidence))
        label, votes, confidence = track.tally()
        if votes < self.config.min_votes:
            return None
        track.label, track.confidence = label, confidence
        if track.counted:
            return None
        track.counted = True
        return CountEvent(wall, track.id, label, confidence, track.box)
