"""A source that reads the images of a folder (and its subfolders) in name order, or one image file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import CameraError, ImageError
from .base import FrameSource
from .imagecheck import read_image_checked

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(folder: Path) -> list[Path]:
    """Every image under ``folder``, sorted by path so runs are repeatable; unreadable subfolders
    are skipped with a warning."""

    def unreadable(exc: OSError) -> None:
        log.warning("%s: skipping an unreadable folder: %s", folder, exc)

    found = []
    for root, _, files in os.walk(folder, onerror=unreadable, followlinks=True):
        found += [Path(root) / name for name in files if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(p for p in found if p.is_file())


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is one still image (by its suffix), which FolderSource reads as a folder of one."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


class FolderSource(FrameSource):
    """Each image of a folder (or one image file) is one frame; unreadable images are skipped with a
    warning.

    The frames are unrelated photos (``stills``), so the runtime judges each on its own: a person in
    one photo is counted from that photo. The run ends after the last image unless ``loop``::

        source = FolderSource("demo/", loop=False)
        source = FolderSource("door.jpg")
    """

    stills = True

    def __init__(self, folder: str | Path, *, loop: bool = False) -> None:
        super().__init__(str(folder))
        self.folder = Path(folder)
        if is_image_file(self.folder):
            self.paths = [self.folder]
        elif not self.folder.is_dir():
            raise CameraError(f"{folder}: image folder not found; give an existing folder of JPEG/PNG files")
        else:
            self.paths = list_images(self.folder)
        if not self.paths:
            raise CameraError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder; "
                              f"add some or pick another source")
        self.loop = loop
        self.current: Path | None = None
        self._index = 0
        self._delivered_this_pass = False

    def _read(self) -> np.ndarray | None:
        while True:
            if self._index >= len(self.paths):
                # A pass with no readable image would loop forever doing nothing.
                if not self.loop or not self._delivered_this_pass:
                    self.exhausted = True
                    return None
                self._index, self._delivered_this_pass = 0, False
            path = self.paths[self._index]
            self._index += 1
            try:
                frame = read_image_checked(path)
            except ImageError as exc:
                log.warning("%s: skipping %s: %s", self.name, path.name, exc)
                continue
            self.current = path
            self._delivered_this_pass = True
            return frame
