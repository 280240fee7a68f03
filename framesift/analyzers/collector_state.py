"""Per-source state of the collector: the memory bank of kept embeddings, a monotonic stream clock,
and the source's pacer, shot tracker, quality gate and total-budget pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framesift.analyzers.collector_pacing import Pacer
from framesift.analyzers.collector_select import Pool
from framesift.analyzers.collector_shots import Gate, ShotTracker
from framesift.errors import EngineError


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
    offset: float = 0.0
    last_raw: float | None = None
    first: float | None = None
    last_keep: float | None = None
    last_candidate: float | None = None
    kept: int = 0
    seen: int = 0

    def stream_time(self, raw: float) -> float:
        """Presentation time made monotonic across pts resets (reconnects, loops)."""
        if self.last_raw is not None and raw < self.last_raw:
            self.offset += self.last_raw - raw
        self.last_raw = raw
        return raw + self.offset
