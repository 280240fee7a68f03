"""What a file's container says, read without decoding but for the first frame (its rotation):
how many frames a source will deliver (progress bar totals), the frame size, the keyframes."""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import av
import numpy as np

from framesift.stream._errors import check_local_file, open_error, video_stream
from framesift.stream.orient import quarter_turns


def expected_frames(cfg: Any) -> int | None:
    """Frames a file source will deliver, from the container's frame count or duration, with its
    start/end window and ``target_fps`` applied (None if unknown, live or looping)."""
    if cfg.live or cfg.type_name() != "file" or cfg.loop:
        return None
    if not os.path.isfile(cfg.path):  # a FIFO or device would block the open; the source reports it
        return None
    try:
        with av.open(cfg.path) as c:
            s = c.streams.video[0]
            rate = float(s.average_rate or s.guessed_rate or 0)
            if s.duration is not None and s.time_base is not None:
                duration = float(s.duration * s.time_base)
            elif c.duration is not None:
                duration = c.duration / 1_000_000
            else:
                duration = (s.frames / rate) if s.frames and rate else 0.0
            n = s.frames or round(duration * rate)
    except Exception:
        return None
    if not n:
        return None
    if duration > 0 and (cfg.start is not None or cfg.end is not None):
        start, end = cfg.start or 0.0, min(cfg.end or duration, duration)
        n = int(n * max(0.0, end - start) / duration)
    if cfg.target_fps and rate > cfg.target_fps:
        n = int(n * cfg.target_fps / rate)
    return n


def total_frames(configs: list[Any]) -> int | None:
    """How many frames ``configs`` (source configs) will deliver in all; None when any is unknown."""
    total = 0
    for cfg in configs:
        n = cfg.frame_count()
        if n is None:
            return None
        total += n
    return total


def frame_size(path: str) -> tuple[int, int] | None:
    """``(width, height)`` of a file's first video stream as it is shown (turned by its display
    matrix, see :func:`turns`), or None when it cannot be read."""
    if not os.path.isfile(path):
        return None
    try:
        with av.open(path) as c:
            cc = c.streams.video[0].codec_context
            if not (cc.width and cc.height):
                return None
            size = (int(cc.width), int(cc.height))
            return size[::-1] if _first_frame_turns(c) % 2 else size
    except Exception:  # unreadable files are reported by the source that opens them
        return None


def turns(path: str) -> int:
    """Counter-clockwise quarter turns that show a file's pictures upright, read from its first
    frame's display matrix (phone videos, EXIF-oriented photos); 0 when there is none or the file
    cannot be read."""
    try:
        with av.open(path) as c:
            return _first_frame_turns(c)
    except Exception:  # an unreadable file: the source reports it
        return 0


def _first_frame_turns(container: Any) -> int:
    """:func:`~framesift.stream.orient.quarter_turns` of the first decoded frame; 0 when the start
    cannot be decoded (the source counts and skips it)."""
    try:
        first = next(container.decode(container.streams.video[0]), None)
    except Exception:  # a broken start: the header's size stands
        return 0
    return quarter_turns(first) if first is not None else 0


def keyframe_indices(path: str) -> list[int]:
    """Indices (in presentation order) of the frames a file stores as keyframes (its packets only)."""
    _, key = video_packets(path)
    return np.flatnonzero(key).tolist()


@contextmanager
def open_video(path: str) -> Iterator[tuple[Any, Any]]:
    """``(container, first video stream)`` of a local file, with the sources' one-line errors (a
    :class:`~framesift.errors.SourceError` or :class:`~framesift.errors.DecodeError`) for a missing,
    unreadable or video-less file instead of FFmpeg's."""
    check_local_file(path)
    try:
        c = av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        raise open_error(exc, path) from None
    with c:
        yield c, video_stream(path, c)


def video_packets(path: str) -> tuple[np.ndarray, np.ndarray]:
    """``(pts, keyframe)`` of the packets of a file's first video stream in presentation order
    (packets without a pts left out), read without decoding: int64 and bool arrays, 9 bytes a frame."""
    with open_video(path) as (c, s):
        return _packet_times(c, s)


def _packet_times(container: Any, stream: Any) -> tuple[np.ndarray, np.ndarray]:
    pts, key = array("q"), bytearray()
    for p in container.demux(stream):
        if p.pts is not None:
            pts.append(p.pts)
            key.append(bool(p.is_keyframe))
    times, flags = np.frombuffer(pts, np.int64), np.frombuffer(bytes(key), np.uint8).astype(bool)
    order = np.lexsort((flags, times))  # by time; a shared time (a broken file): the keyframe last
    return times[order], flags[order]


def stored_frames(path: str) -> int:
    """The frame count a file's header states (0 when it states none)."""
    with av.open(path) as c:
        return int(c.streams.video[0].frames or 0)


def frame_layout(path: str) -> tuple[Fraction, int, list[int], bool] | None:
    """``(rate, frames, keyframes, constant)`` of a file read from its packets, without decoding:
    the nominal rate, the frame count, the frame indices of its keyframes (from presentation times,
    as a seek numbers them) and whether every frame sits on the rate's grid (constant frame rate,
    so a time range and a frame range name the same frames). None when the file has no rate."""
    with open_video(path) as (c, s):
        rate = s.average_rate or s.guessed_rate
        tb = s.time_base
        if not rate or tb is None:
            return None
        pts, key = _packet_times(c, s)
        start = s.start_time
    if not len(pts):
        return None
    origin = start if start is not None else int(pts[0])  # as the decoder's indices count
    rate = Fraction(rate)
    slots = [(int(t) - origin) * tb * rate for t in pts]
    constant = all(abs(x - i) < Fraction(1, 4) for i, x in enumerate(slots))
    return rate, len(pts), np.flatnonzero(key).tolist(), constant
