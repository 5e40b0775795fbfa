"""The output interface: what the gate does with each frame's tracks and each counted person."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..tracking import CountEvent, Track


class Output:
    """Something driven by the frame loop: a LED, a buzzer, an event log, a preview.

    Override the hooks you need; the defaults do nothing. The runtime calls ``on_frame`` once per
    frame with the live tracks, ``on_count`` once per counted person, and ``close`` at exit
    (flush files, release pins). Wire outputs with ``build_outputs(config)``.
    """

    name = "output"

    def on_frame(self, tracks: Sequence[Track], frame: np.ndarray) -> None:
        """Called once per frame with the live tracks."""

    def on_count(self, event: CountEvent) -> None:
        """Called once per counted person."""

    def close(self) -> None:
        """Release what the output holds; safe to call twice."""

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
