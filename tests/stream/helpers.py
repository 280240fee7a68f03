"""Small helpers shared by the stream tests."""

from __future__ import annotations

from pathlib import Path

import av
import av.error
import numpy as np

from framesift.config import SourceConfig
from framesift.frame import Frame
from framesift.samples import read_barcode
from framesift.stream.base import Source
from framesift.stream.factory import build_source


def read_all(cfg: SourceConfig, limit: int | None = None) -> list[Frame]:
    """Open the source for ``cfg``, read every frame (or ``limit``), close it."""
    return read_source(build_source(cfg), limit)


def read_source(src: Source, limit: int | None = None) -> list[Frame]:
    """Open ``src``, read every frame (or ``limit``), close it."""
    src.open()
    out: list[Frame] = []
    try:
        for f in src.frames():
            out.append(f)
            if limit is not None and len(out) >= limit:
                break
    finally:
        src.close()
    return out


def barcodes(frames: list[Frame]) -> list[int]:
    return [read_barcode(f.image) for f in frames]


def corrupt_middle(path: Path, out: Path, start: float, end: float) -> Path:
    """A copy of ``path`` with 8 random bytes every 97 between fractions ``start`` and ``end`` of it."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    n = len(data)
    for off in range(int(n * start), int(n * end), 97):
        data[off : off + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


def ffmpeg_count(path: Path) -> dict[int, int]:
    """pts → frame number as FFmpeg counts the frames it outputs (corrupt ones included; a packet
    that does not decode gives none)."""
    counted: dict[int, int] = {}
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        for packet in c.demux(stream):
            try:
                decoded = stream.codec_context.decode(packet)
            except av.error.InvalidDataError:
                continue
            for f in decoded:
                counted[f.pts] = len(counted)
    return counted
