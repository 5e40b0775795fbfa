"""A source over cv2.VideoCapture: USB cameras, /dev/videoN, video files and rtsp/http streams."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..errors import CameraError
from .base import FrameSource

log = logging.getLogger(__name__)

_DEVICE = re.compile(r"^(?:/dev/video)?(\d+)$")
# URLs OpenCV (FFmpeg) opens as network streams; open_source sends them here untouched.
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://")
# FFmpeg otherwise waits 30 s per read of a stream that stopped answering, and forever to open one.
STREAM_OPEN_TIMEOUT_MS = 10_000
STREAM_READ_TIMEOUT_MS = 5_000


def parse_device(spec: str) -> int | None:
    """The device index of ``2`` or ``/dev/video2``; None for files and URLs."""
    match = _DEVICE.match(spec.strip())
    return int(match.group(1)) if match else None


def is_stream(spec: str) -> bool:
    """Whether ``spec`` is a network stream URL."""
    return spec.strip().lower().startswith(STREAM_PREFIXES)


class OpenCVSource(FrameSource):
    """Frames from OpenCV: a V4L2 device, a video file or a network stream.

    A video file is finite: it ends the run at its last frame, or starts again with ``loop``.
    Devices are asked for ``width``x``height`` at ``fps``; what they give is what we use::

        source = OpenCVSource("/dev/video0", width=640, height=480, fps=15)
    """

    def __init__(self, spec: str, *, width: int = 640, height: int = 480, fps: int = 15,
                 loop: bool = False) -> None:
        import cv2

        super().__init__(spec)
        self.device = parse_device(spec)
        self.is_stream = is_stream(spec)
        self.is_file = self.device is None and not self.is_stream
        self.loop = loop
        if self.is_file and not Path(spec).is_file():
            # Any path that is not there: it may have been meant as a folder, a photo or a video.
            raise CameraError(f"{spec}: no such file or folder; give a camera index, /dev/videoN, "
                              f"a video file, an rtsp:// URL, an image or an image folder")
        if self.is_stream:
            self._capture = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_OPEN_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS])
        else:
            self._capture = cv2.VideoCapture(self.device if self.device is not None else spec)
        if not self._capture.isOpened():
            self._capture.release()
            raise CameraError(f"{spec}: OpenCV cannot open it; {self._hint()}")
        # A file's frames are timed by their index at its own frame rate (on loop the time goes on).
        self._frame_seconds = 1.0 / (self._capture.get(cv2.CAP_PROP_FPS) or fps) if self.is_file else 0.0
        self._frames_read = 0
        if self.device is not None:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            self._capture.set(cv2.CAP_PROP_FPS, fps)
        log.info("%s: opened (%dx%d)", self.name, int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def _hint(self) -> str:
        if self.device is not None:
            return "is the camera plugged in (ls /dev/video*) and not used by another program?"
        if self.is_stream:
            return "check the URL, the network and the camera's credentials"
        return "is it a video OpenCV can decode (mp4, avi, mkv)?"

    def _read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        if ok and frame is not None:
            return self._timed(frame)
        if self.is_file:
            if not self.loop:
                self.exhausted = True
                return None
            import cv2

            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
            if ok and frame is not None:
                return self._timed(frame)
            self.exhausted = True
        return None

    def _timed(self, frame: np.ndarray) -> np.ndarray:
        if self.is_file:
            self.frame_time = self._frames_read * self._frame_seconds
            self._frames_read += 1
        return frame

    def _close(self) -> None:
        self._capture.release()
