"""``type: images``: a folder of images or a glob pattern, read in sorted order at a fixed rate
(decoded by FFmpeg)."""

from __future__ import annotations

import fnmatch
import functools
import glob
import logging
import os
import struct
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
from framesift.stream._errors import reason
from framesift.stream.base import Source
from framesift.stream.orient import coded_target, quarter_turns, upright
from framesift.stream.sampling import FpsSampler, output_size, rate_fraction

log = logging.getLogger(__name__)


class ImagesSourceConfig(SourceSpec):
    """A folder of images or a glob pattern, read in sorted order at ``fps``."""

    type: Literal["images"] = "images"
    implementation: ClassVar[str] = "ImagesSource"

    path: str
    fps: float = Field(1.0, gt=0)
    max_pixels: int = Field(
        100_000_000,
        ge=1,
        description="images with more pixels (width x height, read from the file header) are skipped "
        "with a warning",
    )
    offset: int = Field(0, ge=0, description="skip the first N images (sorted by name); frame indices stay")
    limit: int | None = Field(
        None,
        ge=1,
        description="read at most N images from `offset` on: images [offset, offset + limit) of the "
        "sorted listing, counted before unreadable ones are skipped (label --ray's chunks)",
    )

    def input(self) -> str:
        return self.path

    def frame_count(self) -> int | None:
        n = max(0, len(list_images(self.path)) - self.offset)
        n = n if self.limit is None else min(n, self.limit)
        return n if self.max_frames is None else min(n, self.max_frames)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


def list_images(path: str) -> list[str]:
    """Sorted image files in a folder, or the files matching a glob pattern; each file once.

    A ``**`` pattern is walked by :func:`_walk_glob`, which enters each directory once, so symlink
    loops end (Python's recursive glob follows them until the path is too long).
    """
    if os.path.isdir(path):
        names = [os.path.join(path, n) for n in os.listdir(path)]
        found = [n for n in names if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(n)]
    elif "**" in path.split(os.sep):
        found = _walk_glob(path)
    else:  # without ``**`` a pattern reaches a bounded depth
        found = [n for n in glob.glob(path) if os.path.isfile(n)]
    return _once(sorted(found))


def _once(paths: list[str]) -> list[str]:
    """``paths`` without second names (symlinks, hard links) of a file already listed."""
    seen: set[tuple[int, int]] = set()
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            out.append(p)
    return out


def _name_matches(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False  # like glob: wildcards do not match hidden names
    return fnmatch.fnmatchcase(name, pattern)


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...], *, prefix: bool = False) -> bool:
    """Whether the path ``parts`` matches the glob ``pattern`` (components; ``**`` is any number of
    them), or with ``prefix`` whether a path below ``parts`` could."""

    @functools.cache
    def m(i: int, j: int) -> bool:
        if j == len(parts):
            return i < len(pattern) if prefix else all(p == "**" for p in pattern[i:])
        if i == len(pattern):
            return False
        if pattern[i] == "**":
            return m(i + 1, j) or (not parts[j].startswith(".") and m(i, j + 1))
        return _name_matches(parts[j], pattern[i]) and m(i + 1, j + 1)

    return m(0, 0)


def _walk_glob(pattern: str) -> list[str]:
    """The files matching a ``**`` glob, entering each directory once (by device and inode)."""
    comps = pattern.split(os.sep)
    first = next(i for i, c in enumerate(comps) if glob.has_magic(c))
    root = os.sep.join(comps[:first])
    if pattern.startswith(os.sep) and not root:
        root = os.sep
    pat = tuple(c for c in comps[first:] if c)
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while stack:
        directory, parts = stack.pop()
        try:
            st = os.stat(directory or ".")
            if (st.st_dev, st.st_ino) in seen:
                continue  # a loop, or a second way into a directory already listed
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(directory or ".") as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            sub = (*parts, entry.name)
            full = os.path.join(directory, entry.name)
            try:
                if entry.is_dir():
                    if _matches(pat, sub, prefix=True):
                        stack.append((full, sub))
                elif entry.is_file() and _matches(pat, sub):
                    found.append(full)
            except OSError:
                continue
    return found


def image_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a JPEG, PNG, GIF, BMP, WebP, TIFF or PNM file, without
    decoding it; None for another format or an unreadable header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
                return w, h
            if head[:6] in (b"GIF87a", b"GIF89a"):
                w, h = struct.unpack("<HH", head[6:10])
                return w, h
            if head[:2] == b"BM" and len(head) >= 26:
                if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 header
                    w, h = struct.unpack("<HH", head[18:22])
                    return w, h
                w, h = struct.unpack("<ii", head[18:26])
                return abs(w), abs(h)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp_size(head + fh.read(32))
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff_size(fh, head[:2] == b"II")
            if head[:2] == b"\xff\xd8":
                return _jpeg_size(fh)
            if len(head) >= 2 and head[0:1] == b"P" and head[1:2] in b"1234567":
                return _pnm_size(head + fh.read(1024))
    except (OSError, struct.error, ValueError, KeyError, IndexError):
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack("<I", head[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def _tiff_size(fh: Any, little: bool) -> tuple[int, int] | None:
    end = "<" if little else ">"
    fh.seek(4)
    (ifd,) = struct.unpack(end + "I", fh.read(4))
    fh.seek(ifd)
    (count,) = struct.unpack(end + "H", fh.read(2))
    size: dict[int, int] = {}
    for _ in range(min(count, 4096)):
        tag, kind, _n = struct.unpack(end + "HHI", fh.read(8))
        value = fh.read(4)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            size[tag] = (
                struct.unpack(end + "H", value[:2])[0] if kind == 3 else struct.unpack(end + "I", value)[0]
            )
    return (size[256], size[257]) if 256 in size and 257 in size else None


#: JPEG start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC).
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(fh: Any) -> tuple[int, int] | None:
    fh.seek(2)
    for _ in range(10_000):  # segments before the frame header (APPn, DQT, ...)
        byte = fh.read(1)
        while byte == b"\xff":  # fill bytes
            byte = fh.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            continue
        (length,) = struct.unpack(">H", fh.read(2))
        if marker in _SOF:
            h, w = struct.unpack(">xHH", fh.read(5))
            return w, h
        if marker == 0xDA or length < 2:  # start of scan: no frame header before it
            return None
        fh.seek(length - 2, os.SEEK_CUR)
        if fh.read(1) != b"\xff":
            return None
    return None


def _pnm_size(head: bytes) -> tuple[int, int] | None:
    if head[1:2] == b"7":  # PAM: WIDTH and HEIGHT lines
        fields = dict(
            line.split(None, 1) for line in head.decode("ascii", "replace").splitlines()[1:] if " " in line
        )
        return int(fields["WIDTH"]), int(fields["HEIGHT"])
    tokens: list[bytes] = []
    for line in head[2:].splitlines():
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            return int(tokens[0]), int(tokens[1])
    return None


class ImagesSource(Source):
    """Image ``i`` (sorted by name) is frame ``i`` with ``pts = i`` and ``time_base = 1/fps``.

    Images FFmpeg cannot read, and images over ``max_pixels`` (checked from the file header before
    decoding), are skipped with a warning naming the file and counted in ``stats.decode_errors``
    (by cause in ``stats.extra``: ``unreadable``, ``too_large``). ``target_fps`` and output
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
        """The image at ``path`` as an array; None (warned and counted) when it has more than
        ``max_pixels`` pixels or FFmpeg cannot decode it."""
        cap = self.cfg.max_pixels
        size = image_size(path)
        if size is not None and size[0] * size[1] > cap:
            self._skip(
                "too_large",
                f"{path}: image of {size[0]}x{size[1]} pixels is over max_pixels ({cap}); skipped "
                "(raise max_pixels to read it)",
            )
            return None
        try:
            with av.open(path) as c:
                stream = c.streams.video[0]
                if size is None:  # a format image_size() does not read: FFmpeg's own guard
                    stream.codec_context.options = {**stream.codec_context.options, "max_pixels": str(cap)}
                for f in c.decode(stream):
                    turns = quarter_turns(f)  # EXIF orientation
                    size = output_size(
                        f.width, f.height, *coded_target(self.cfg.width, self.cfg.height, turns)
                    )
                    kw: dict[str, Any] = {"format": self.cfg.pixel_format}
                    if size is not None:
                        kw["width"], kw["height"] = size
                    return upright(f.to_ndarray(**kw), turns)
            why = "no image in it"
        except (av.error.FFmpegError, OSError, IndexError, ValueError, MemoryError) as exc:
            why = reason(exc)
        self._skip("unreadable", f"{path}: FFmpeg cannot read this image ({why}); skipped")
        return None

    def _skip(self, cause: str, message: str) -> None:
        """Count a skipped image in ``stats.decode_errors`` and by cause in ``stats.extra``; warn."""
        self.stats.decode_errors += 1
        self.stats.extra[cause] = self.stats.extra.get(cause, 0) + 1
        log.warning("%s", message)

    def frames(self) -> Iterator[Frame]:
        sampler = FpsSampler(self.cfg.target_fps)
        end = len(self._files) if self.cfg.limit is None else self.cfg.offset + self.cfg.limit
        for i in range(self.cfg.offset, min(end, len(self._files))):
            path = self._files[i]
            self.poll()
            if self._stop.is_set():
                return
            if not sampler.keep(i * self.time_base):
                self.stats.frames_skipped += 1
                continue
            image = self._read(path)
            if image is None:
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
        unreadable = self.stats.extra.get("unreadable", 0)
        if self.stats.frames_decoded == 0 and unreadable == self.stats.decode_errors > 0:
            raise SourceError(
                f"{self.cfg.path}: none of its {unreadable} images could be read (see the warnings "
                "above; check the files)"
            )

    def _name(self, path: str) -> str:
        """A unique name for the image: its path below the folder, without extension, ``/`` → ``__``."""
        root = self.cfg.path if os.path.isdir(self.cfg.path) else os.path.dirname(self.cfg.path.split("*")[0])
        rel = os.path.relpath(path, root) if root else os.path.basename(path)
        return os.path.splitext(rel)[0].replace(os.sep, "__")

    def close(self) -> None:
        self._stop.set()
