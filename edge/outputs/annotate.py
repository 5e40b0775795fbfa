"""Annotated frames: boxes and labels coloured per class, to a window, a folder or a video."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..tracking import Track
from .base import Output

log = logging.getLogger(__name__)

# BGR, because frames are BGR.
CLASS_COLOURS = {"properly_masked": (60, 180, 60), "improperly_masked": (0, 165, 255),
                 "unmasked": (40, 40, 220)}
UNDECIDED = (160, 160, 160)
_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".mkv": "MJPG"}


def draw_tracks(frame: np.ndarray, tracks: Sequence[Track]) -> np.ndarray:
    """A copy of ``frame`` with each track's box and ``label confidence`` drawn on it."""
    import cv2

    out = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    for track in tracks:
        x, y, w, h = track.box
        colour = CLASS_COLOURS.get(track.label or "", UNDECIDED)
        text = f"#{track.id} {track.label} {track.confidence:.2f}" if track.label else f"#{track.id} ?"
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
        cv2.putText(out, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return out


def has_display() -> bool:
    """Whether a window could be shown (X11 or Wayland)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class AnnotateOutput(Output):
    """Draws the tracks and shows or saves the result.

    ``window`` shows it when a display exists (and OpenCV has GUI support); ``directory`` gets one
    JPEG per frame; ``video`` gets an .avi (MJPG) or .mp4 (mp4v) at ``fps``::

        AnnotateOutput(directory=Path("annotated"), video=None, window=False, fps=15)
    """

    name = "annotate"

    def __init__(self, *, directory: Path | None = None, video: Path | None = None,
                 window: bool = False, fps: float = 15.0) -> None:
        self.directory, self.video_path, self.fps = directory, video, fps
        self.window = window and has_display()
        if window and not self.window:
            log.warning("preview: no display (DISPLAY unset); not showing a window")
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        self._writer: Any = None
        self.frames = 0

    def on_frame(self, tracks: Sequence[Track], frame: np.ndarray) -> None:
        import cv2

        image = draw_tracks(frame, tracks)
        self.frames += 1
        if self.directory is not None:
            cv2.imwrite(str(Path(self.directory) / f"frame_{self.frames:06d}.jpg"), image)
        if self.video_path is not None:
            self._write_video(image)
        if self.window:
            self._show(image)

    def _write_video(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            path = Path(self.video_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(path.suffix.lower(), "MJPG"))
            self._size = (image.shape[1], image.shape[0])
            self._writer = cv2.VideoWriter(str(path), fourcc, float(self.fps), self._size)
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size)
        self._writer.write(image)

    def _show(self, image: np.ndarray) -> None:
        import cv2

        try:
            cv2.imshow("maskipy", image)
            cv2.waitKey(1)
        except cv2.error as exc:
            # opencv-python-headless has no GUI: say so once and stop trying.
            log.warning("preview: cannot show a window (%s); install opencv-python for a preview",
                        str(exc).splitlines()[0])
            self.window = False

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.window:
            import cv2

            cv2.destroyAllWindows()
            self.window = False
