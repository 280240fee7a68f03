"""Small helpers shared by the stream tests."""

from __future__ import annotations

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
