"""``type: images``: a folder of images or a glob pattern, read in sorted order at a fixed rate
(decoded by FFmpeg)."""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, ClassVar, Literal

import av
import av.error
from pydantic import Field

from framesift.config.sources import SourceSpec
from framesift.errors import SourceError
from framesift.frame import Frame
from framesift.stream.base import Source
from framesift.stream.sampling import FpsSampler, output_size, rate_fraction

log = logging.getLogger(__name__)


class ImagesSourceConfig(SourceSpec):
    """A folder of images or a glob pattern, read in sorted order at ``fps``."""

    type: Literal["images"] = "images"
    implementation: ClassVar[str] = "ImagesSource"

    path: str
    fps: float = Field(1.0, gt=0)

    def input(self) -> str:
        return self.path

    def frame_count(self) -> int | None:
        n = len(list_images(self.path))
        return n if self.max_frames is None else min(n, self.max_frames)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


def list_images(path: str) -> list[str]:
    """Sorted image files in a folder, or the files matching a glob pattern."""
    if os.path.isdir(path):
        names = [os.path.join(path, n) for n in os.listdir(path)]
        return sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(n))
    return sorted(n for n in glob.glob(path, recursive=True) if os.path.isfile(n))


class ImagesSource(Source):
    """Image ``i`` (sorted by name) is frame ``i`` with ``pts = i`` and ``time_base = 1/fps``.

    Unreadable images are counted in ``stats.decode_errors`` and skipped. ``target_fps`` and output
    size/pixel format apply as for videos.
    """

    live = False

    def __init__(self, cfg: ImagesSourceConfig, source_id: str, *, gpu_frames: bool = False) -> None:
        super().__init__(source_id)
        self.cfg = cfg
        self.input_name = cfg.path
        self.time_base = 1 / rate_fraction(cfg.fps)
        self._files: list[str] = []
        self._stop = threading.Event()

    def open(self) -> None:
        self._stop.clear()
        path = self.cfg.path
        if not os.path.isdir(path) and not glob.has_magic(path) and not os.path.exists(path):
            raise SourceError(
                f"{path}: folder not found (give a folder of images or a glob like 'dir/*.jpg')"
            )
        files = list_images(path)
        if not files:
            raise SourceError(
                f"{path}: no images found (supported: {', '.join(IMAGE_EXTENSIONS)}; check the folder or pattern)"
            )
        self._files = files

    def _read(self, path: str) -> object | None:
        try:
            with av.open(path) as c:
                for f in c.decode(video=0):
                    size = output_size(f.width, f.height, self.cfg.width, self.cfg.height)
                    kw: dict[str, Any] = {"format": self.cfg.pixel_format}
                    if size is not None:
                        kw["width"], kw["height"] = size
                    return f.to_ndarray(**kw)
        except (av.error.FFmpegError, OSError, IndexError) as exc:
            log.debug("%s: unreadable image skipped: %s", path, exc)
        return None

    def frames(self) -> Iterator[Frame]:
        sampler = FpsSampler(self.cfg.target_fps)
        for i, path in enumerate(self._files):
            self.poll()
            if self._stop.is_set():
                return
            if not sampler.keep(i * self.time_base):
                self.stats.frames_skipped += 1
                continue
            image = self._read(path)
            if image is None:
                self.stats.decode_errors += 1
                continue
            self.stats.frames_decoded += 1
            now = time.time()
            self.stats.last_frame_wallclock = now
            yield Frame(
                source_id=self.id,
                index=i,
                pts=i,
                time_base=Fraction(self.time_base),
                wallclock=now,
                image=image,
                keyframe=True,
                meta={"path": path, "name": self._name(path)},
            )

    def _name(self, path: str) -> str:
        """A unique name for the image: its path below the folder, without extension, ``/`` → ``__``."""
        root = self.cfg.path if os.path.isdir(self.cfg.path) else os.path.dirname(self.cfg.path.split("*")[0])
        rel = os.path.relpath(path, root) if root else os.path.basename(path)
        return os.path.splitext(rel)[0].replace(os.sep, "__")

    def close(self) -> None:
        self._stop.set()
