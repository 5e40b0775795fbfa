"""A source over the Raspberry Pi camera stack (libcamera) through picamera2, which only runs on a Pi."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import CameraError
from .base import FrameSource

log = logging.getLogger(__name__)


def _import_picamera2() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CameraError(f"picamera2 is not importable ({exc}); install python3-picamera2 with apt "
                          f"(sudo apt install python3-picamera2) and make the venv with "
                          f"--system-site-packages, or use a USB camera (source = /dev/video0)") from None
    except ValueError as exc:
        # "numpy.dtype size changed": apt's picamera2/simplejpeg were built for apt's numpy, and pip
        # put another numpy first in the venv.
        raise CameraError(f"picamera2 does not load with this numpy ({exc}); keep apt's numpy: "
                          f"/opt/maskipy/bin/pip uninstall numpy (install.sh pins it in "
                          f"/opt/maskipy/constraints.txt)") from None
    return Picamera2


class Picamera2Source(FrameSource):
    """The Pi camera module: BGR frames of ``width``x``height`` at up to ``fps``.

    picamera2's ``RGB888`` format is BGR in memory, which is what OpenCV and the crop contract
    expect::

        source = Picamera2Source(width=640, height=480, fps=15)
    """

    def __init__(self, *, width: int = 640, height: int = 480, fps: int = 15, camera: int = 0) -> None:
        super().__init__(f"picamera2:{camera}")
        picamera2_class = _import_picamera2()
        try:
            self._camera = picamera2_class(camera)
            frame_us = int(1_000_000 / fps)
            config = self._camera.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"},
                controls={"FrameDurationLimits": (frame_us, frame_us)})
            self._camera.configure(config)
            self._camera.start()
        except (RuntimeError, IndexError, OSError) as exc:
            raise CameraError(f"{self.name}: cannot start the camera ({exc}); is the ribbon cable "
                              f"seated and the camera listed by rpicam-hello --list-cameras?") from None
        log.info("%s: started %dx%d at %d fps", self.name, width, height, fps)

    def _read(self) -> np.ndarray | None:
        try:
            return self._camera.capture_array("main")
        except RuntimeError as exc:
            log.warning("%s: capture failed: %s", self.name, exc)
            return None

    def _close(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()
