"""The ``frame_store`` sink: writes frames kept by the collector into a :class:`FrameStore`.

It consumes :class:`~framesift.events.FrameKept` events that carry a payload (the image and
embedding, :class:`~framesift.events.FramePayload`) and takes it, so the image is released once
written (or failed); other events are ignored. Failures raise SinkError (non-transient), which the
SinkWorker counts and reports; capture is never blocked. ``counts`` holds this sink's own tally
(``written``, ``disk_full``, ``failed``, ``no_image``, ``removed``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from framesift.config.sinks import SinkSpec
from framesift.config.units import parse_duration, parse_size
from framesift.errors import ConfigError, SinkError
from framesift.events import Event, FrameKept
from framesift.sinks.base import Sink
from framesift.store.index import FrameStore

log = logging.getLogger("framesift.sinks.frame_store")


class FrameStoreSinkConfig(SinkSpec):
    """Kept frames as image files plus an SQLite index (WAL), with size/age retention."""

    type: Literal["frame_store"] = "frame_store"
    implementation: ClassVar[str] = "FrameStoreSink"
    needs_frames: ClassVar[bool] = True

    path: str = Field(description="store directory (created)")
    format: Literal["jpeg", "png", "webp"] = "jpeg"
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality")
    png_compression: int = Field(3, ge=0, le=9)
    max_size: str | None = Field(None, description="retention by total size, e.g. '20GB', '500MB'")
    max_age: str | None = Field(None, description="retention by age, e.g. '30d', '12h'")
    fsync: bool = Field(True, description="fsync each image before the rename (crash safety)")
    queue_size: int = Field(64, ge=1, le=100_000, description="kept frames waiting (they carry images)")

    @model_validator(mode="after")
    def _check(self) -> FrameStoreSinkConfig:
        if self.max_size is not None:
            retention_bytes(self.max_size, "max_size")
        if self.max_age is not None:
            parse_duration(self.max_age)
        return self


#: The smallest store a size retention allows: under it, retention deletes each frame it stores.
MIN_RETENTION_BYTES = 1 << 20


def retention_bytes(text: str, where: str) -> int:
    """A store's size retention (``'20GB'``) in bytes; at least :data:`MIN_RETENTION_BYTES`."""
    n = parse_size(text)
    if n < MIN_RETENTION_BYTES:
        raise ConfigError(
            f"{where} {text}: under 1MB, less than a few kept frames (retention would delete what the "
            "store keeps); give e.g. 500MB or 20GB"
        )
    return n


class FrameStoreSink(Sink):
    """Kept frames → image files + SQLite index, with retention."""

    name = "frame_store"
    accepts = (FrameKept,)
    drain_s = None  # local files: every kept frame queued is stored before shutdown ends

    def __init__(self, store: FrameStore, *, name: str | None = None, engine: dict[str, Any] | None = None):
        self.store = store
        if name:
            self.name = name
        self.engine = engine
        self.counts: Counter[str] = Counter()
        self.last_error: str | None = None

    @classmethod
    def from_config(cls, cfg: FrameStoreSinkConfig) -> FrameStoreSink:
        store = FrameStore(
            cfg.path,
            format=cfg.format,
            quality=cfg.quality,
            png_compression=cfg.png_compression,
            max_bytes=None if cfg.max_size is None else retention_bytes(cfg.max_size, "max_size"),
            max_age_s=None if cfg.max_age is None else parse_duration(cfg.max_age),
            fsync=cfg.fsync,
        )
        return cls(store, name=cfg.name)

    def open(self) -> None:
        self.store.open()
        if self.engine is not None and self.store.get_meta("engine") is None:
            self.store.set_meta("engine", json.dumps(self.engine))
        if self.store.max_bytes is not None or self.store.max_age_s is not None:
            self.counts["removed"] += self.store.enforce_retention()

    def write(self, event: Event) -> None:
        if not isinstance(event, FrameKept):
            return
        taken = event.payload.take() if event.payload is not None else None
        if taken is None:
            self.counts["no_image"] += 1
            return
        image, embedding, model = taken
        before = self.store.removed
        try:
            self.store.add(
                id=event.id or f"{event.source}_{event.frame_index}_{int(event.wallclock * 1000)}",
                source=event.source,
                image=image,
                wallclock=event.wallclock,
                pts=event.pts,
                time_base=event.time_base,
                time=event.time,
                frame_index=event.frame_index,
                reason=event.reason,
                scores=event.scores,
                embedding=embedding,
                model=model,
            )
        except SinkError as exc:
            self.counts["disk_full" if "disk full" in str(exc) else "failed"] += 1
            self.last_error = str(exc)
            exc.sink = self.name
            raise
        self.counts["written"] += 1
        self.counts["removed"] += self.store.removed - before

    def close(self) -> None:
        self.store.close()
