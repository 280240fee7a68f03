"""``type: store``: the frames kept in a frame store (``framesift collect``'s output), read back as a
source, oldest first — for auto-labelling and re-analysis. Each frame carries the source id and
frame id it was recorded with in ``meta`` (``source``, ``id``, and ``name`` for files named after it);
its ``pts``/``time_base`` and ``index`` are the recorded ones."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import ClassVar, Literal

import cv2
from pydantic import Field

from framesift.config.sources import SourceSpec
from framesift.errors import SourceError
from framesift.frame import Frame
from framesift.store.index import FrameStore
from framesift.store.paths import resolve_store_dir
from framesift.store.schema import StoredFrame
from framesift.stream.base import Source

log = logging.getLogger("framesift.store.source")


class StoreSourceConfig(SourceSpec):
    """The kept frames of a frame store (a store folder, or the folder ``framesift collect -o`` wrote)."""

    type: Literal["store"] = "store"
    implementation: ClassVar[str] = "StoreSource"

    path: str
    source: str | None = Field(None, description="only the frames recorded from this source")
    offset: int = Field(
        0, ge=0, description="skip the first N frames of the store (oldest first, after `source`)"
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="read at most N frames from `offset` on: the store's frames [offset, offset + limit), "
        "counted before unreadable images are skipped (label --ray's chunks)",
    )

    def input(self) -> str:
        return self.path

    def frame_count(self) -> int | None:
        try:
            with FrameStore(resolve_store_dir(self.path), readonly=True) as store:
                return window_count(store.count(self.source), self.offset, self.limit)
        except Exception:  # the source's own open() reports an unreadable store
            return None


def window_count(total: int, offset: int, limit: int | None) -> int:
    """How many of ``total`` entries ``[offset, offset + limit)`` holds."""
    n = max(0, total - offset)
    return n if limit is None else min(n, limit)


class StoreSource(Source):
    """Reads the store's index once at ``open()``, then each frame's image as it is asked for.
    Images that are missing, unreadable or outside the store are counted and skipped."""

    def __init__(self, cfg: StoreSourceConfig, source_id: str, *, gpu_frames: bool = False) -> None:
        super().__init__(source_id)
        self.cfg = cfg
        self.input_name = cfg.path
        self._store: FrameStore | None = None
        self._records: list[StoredFrame] = []
        self._stop = threading.Event()

    def open(self) -> None:
        self._stop.clear()
        root = resolve_store_dir(self.cfg.path)
        store = FrameStore(root, readonly=True)
        store.open()
        self._store = store
        records = store.records(source=self.cfg.source)
        end = None if self.cfg.limit is None else self.cfg.offset + self.cfg.limit
        self._records = records[self.cfg.offset : end]

    def frames(self) -> Iterator[Frame]:
        store = self._store
        if store is None:
            raise SourceError(f"{self.input_name}: source is not open (call open() first)", source=self.id)
        for rec in self._records:
            self.poll()
            if self._stop.is_set():
                return
            path = store.path_of(rec)
            image = None if path is None else cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.stats.decode_errors += 1
                log.warning(
                    "%s: frame %s skipped: its image is missing, unreadable or outside the store",
                    self.input_name,
                    rec.id,
                )
                continue
            self.stats.frames_decoded += 1
            now = time.time()
            self.stats.last_frame_wallclock = now
            yield Frame(
                source_id=self.id,
                index=rec.frame_index,
                pts=rec.pts,
                time_base=rec.time_base,
                wallclock=now,
                image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
                meta={"id": rec.id, "source": rec.source, "name": rec.id},
            )

    def close(self) -> None:
        self._stop.set()
        if self._store is not None:
            self._store.close()
            self._store = None
