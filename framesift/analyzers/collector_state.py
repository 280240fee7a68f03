"""Per-source state of the collector: the memory bank of kept embeddings, a monotonic stream clock,
and the source's pacer, shot tracker, quality gate and total-budget pool."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from framesift.analyzers.collector_pacing import Pacer
from framesift.analyzers.collector_select import Pool
from framesift.analyzers.collector_shots import Gate, ShotTracker
from framesift.errors import EngineError
from framesift.frame import Clock

log = logging.getLogger("framesift.analyzers.collector")


class MemoryBank:
    """A fixed-capacity ring of L2-normalised embeddings with a max-cosine query."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._vecs: np.ndarray | None = None
        self._n = 0
        self._pos = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        return 0 if self._vecs is None else int(self._vecs.nbytes)

    def max_similarity(self, e: np.ndarray) -> float:
        """Max cosine of ``e`` to the bank; −1 when empty."""
        if self._vecs is None or self._n == 0:
            return -1.0
        return float(np.max(self._vecs[: self._n] @ e))

    def add(self, e: np.ndarray) -> None:
        e = np.asarray(e, dtype=np.float32).ravel()
        if self._vecs is None:
            self._vecs = np.zeros((self.capacity, e.size), dtype=np.float32)
        elif e.size != self._vecs.shape[1]:
            raise EngineError(
                f"embedding size changed from {self._vecs.shape[1]} to {e.size}: the collector's memory "
                "bank needs one model per run (seed it from a store built with the same model)"
            )
        self._vecs[self._pos] = e
        self._pos = (self._pos + 1) % self.capacity
        self._n = min(self._n + 1, self.capacity)


@dataclass
class SourceState:
    bank: MemoryBank
    pacer: Pacer
    tracker: ShotTracker | None
    gate: Gate
    pool: Pool | None
    live: bool = False
    first: float | None = None
    last_keep: float | None = None
    kept: int = 0
    seen: int = 0
    stream_time: Clock = field(default_factory=Clock)
    plan_time: Clock = field(default_factory=Clock)  # the same clock, run ahead by the candidate plan
    last_candidate: float | None = None
    planned: dict[int, bool] = field(default_factory=dict)  # frame index → candidate (one batch)


def stored_embeddings(
    store_dir: str, model: str | None, bank_size: int, shared_size: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The most recent kept embeddings of a frame store, per source and over all sources (same
    model only; nothing when the store is missing, empty or holds another model's)."""
    from framesift.store.index import INDEX_NAME, FrameStore

    empty = np.zeros((0, 0), np.float32)
    if not (Path(store_dir) / INDEX_NAME).is_file():
        return {}, empty
    with FrameStore(store_dir, readonly=True) as store:
        models = store.models()
        if not models:
            return {}, empty
        if model not in models:
            log.warning(
                "collector: store %s holds embeddings of %s, not %s: memory bank not reloaded",
                store_dir, ", ".join(models), model,
            )  # fmt: skip
            return {}, empty
        per_source = {
            s: store.recent_embeddings(bank_size, source=s, model=model)[1] for s in store.sources()
        }
        shared = store.recent_embeddings(shared_size, model=model)[1] if shared_size else empty
    return per_source, shared
