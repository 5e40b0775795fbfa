"""The alert-hold rule: a class counts as present while one of its people was seen within the hold.

The LEDs and the MQTT alert state share it, so the red LED and Home Assistant's alert agree and
neither flickers between frames::

    hold = AlertHold(("unmasked",), hold_seconds=2.0)
    lit = hold.update(tracks, now)   # True until 2 s after the last unmasked person was seen
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..tracking import Track


class AlertHold:
    """Whether any of ``classes`` is at the gate, held ``hold_seconds`` after it was last seen."""

    def __init__(self, classes: Iterable[str], hold_seconds: float) -> None:
        self.classes, self.hold_seconds = frozenset(classes), hold_seconds
        self._last_seen = float("-inf")

    def update(self, tracks: Sequence[Track], now: float) -> bool:
        """Note this frame's tracks (at monotonic time ``now``) and say whether the hold is on."""
        if any(track.label in self.classes for track in tracks):
            self._last_seen = now
        return self.on(now)

    def on(self, now: float) -> bool:
        return now - self._last_seen <= self.hold_seconds
