"""The ``frame_store`` sink: writes frames kept by the collector into a :class:`FrameStore`.

It consumes :class:`~framesift.store.payload.KeptFrame` events (a FrameKept carrying the image and
embedding) and takes their payload, so the image is released once written (or failed); other
events are ignored. Failures raise SinkError (non-transient), which the
SinkWorker counts and reports; capture is never blocked. ``counts`` holds this sink's own tally
(``written``, ``disk_full``, ``failed``, ``no_image``, ``removed``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

from framesift.config.collect import FrameStoreSinkConfig, parse_duration, parse_size
from framesift.errors import SinkError
from framesift.events import Event, FrameKept
from framesift.sinks.base import Sink
from framesift.store.index import FrameStore
from framesift.store.payload import KeptFrame

log = logging.getLogger("framesift.sinks.frame_store")


class FrameStoreSink(Sink):
    """Kept frames → image files + SQLite index, with retention."""

    name = "frame_store"

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
            max_bytes=None if cfg.max_size is None else parse_size(cfg.max_size),
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
        taken = event.payload.take() if isinstance(event, KeptFrame) and event.payload is not None else None
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
