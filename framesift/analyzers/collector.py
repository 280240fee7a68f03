"""The collector: keep the frames worth labelling, skip the rest, within a budget.

Per frame (embedding ``e``, L2-normalised):

* **novelty** = 1 − max cosine(e, memory bank). The bank holds the embeddings of the most recently
  *kept* frames of the source (a fixed-size ring), and with ``cross_source`` also a shared ring of
  what every source kept, so two cameras seeing the same scene keep it once. An empty bank gives
  novelty 1.
* **relevance** (only with prompts; needs a text tower): ``softmax`` mode takes
  softmax(logit_scale · [cos(e, p₁..pₙ), cos(e, n₁..nₘ)]) over positive prompts p and negative
  prompts n and sums the positives' probabilities (logit_scale is the model's, CLIP: 100). Without
  negatives, a small generic background set is used (:data:`DEFAULT_NEGATIVES`). ``margin`` mode
  takes max cos(e, p) − max cos(e, n) (0 without negatives).

Rules, in order: candidate reasons are ``prompt`` (relevance ≥ threshold and novelty ≥
``prompt_min_novelty``), ``novel`` (novelty ≥ ``novelty_threshold``; unset = by embedder, see
:data:`DEFAULT_NOVELTY`) and ``periodic`` (no keep for
``every_s``). A candidate is kept only if ``min_interval_s`` has passed since the source's last
keep and every budget window has room. Budgets are sliding windows (at most N keeps in *any*
minute/hour/day window), which is stricter than a token bucket (a bucket of N per hour admits a
burst of N on top of N refilled in the same hour). All times are stream time: the frame's
presentation time, kept monotonic across a pts reset (live reconnect, looped file).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from framesift.analyzers.base import Analyzer
from framesift.config.base import AnalyzerSpec
from framesift.engines.base import Embedder
from framesift.errors import ConfigError, EngineError
from framesift.events import Event, FrameKept, FramePayload
from framesift.frame import Frame

log = logging.getLogger("framesift.analyzers.collector")


class CollectorConfig(AnalyzerSpec):
    """Keep frames worth labelling: novel ones, prompt matches, a periodic baseline — within a budget.

    All times count in stream time (presentation timestamps), so a file processed faster than real
    time keeps the same frames as the same video watched live.
    """

    type: Literal["collector"] = "collector"
    implementation: ClassVar[str] = "Collector"

    name: str | None = None
    novelty_threshold: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="keep when 1 - max cosine to the memory bank reaches this; None = by embedder "
        "(pixel 0.35, calibrated in bench/collect.py; CLIP 0.15, uncalibrated)",
    )
    bank_size: int = Field(256, ge=1, le=100_000, description="recent kept embeddings remembered per source")
    cross_source: bool = Field(False, description="also dedupe against what other sources kept")
    shared_bank_size: int = Field(1024, ge=1, le=1_000_000, description="size of the cross-source bank")
    prompts: list[str] = Field(default_factory=list, description="positive text prompts (needs CLIP)")
    negatives: list[str] = Field(default_factory=list, description="negative text prompts")
    prompt_mode: Literal["softmax", "margin"] = "softmax"
    prompt_threshold: float | None = Field(
        None, description="softmax: probability of the positives (default 0.5); margin: cosine margin (0.02)"
    )
    logit_scale: float | None = Field(
        None, gt=0, description="softmax temperature; None = the model's own (CLIP: 100)"
    )
    prompt_min_novelty: float = Field(
        0.03, ge=0.0, le=2.0, description="a prompt match is kept only if at least this novel"
    )
    max_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    max_per_hour: int | None = Field(None, ge=1, le=1_000_000)
    max_per_day: int | None = Field(None, ge=1, le=1_000_000)
    min_interval_s: float = Field(0.0, ge=0.0, description="stream seconds between two keeps of a source")
    every_s: float | None = Field(None, gt=0, description="periodic baseline keep every N stream seconds")
    seed_from: str | None = Field(None, description="frame store directory to reload the memory bank from")

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if self.negatives and not self.prompts:
            raise ValueError("negatives given without prompts: add at least one positive prompt")
        return self

    @property
    def effective_prompt_threshold(self) -> float:
        if self.prompt_threshold is not None:
            return self.prompt_threshold
        return 0.5 if self.prompt_mode == "softmax" else 0.02


DEFAULT_NEGATIVES = ("a photo of an empty scene", "a photo of the background", "a blurry photo")
DEFAULT_LOGIT_SCALE = 100.0
#: Novelty thresholds when the config leaves it unset: ``pixel`` calibrated on real footage
#: (bench/collect.py); CLIP-like embedders get a conservative value (not calibrated: no weights here).
DEFAULT_NOVELTY = {"pixel": 0.35}
DEFAULT_NOVELTY_OTHER = 0.15
WINDOWS = (("max_per_minute", 60.0), ("max_per_hour", 3600.0), ("max_per_day", 86400.0))


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


class SlidingWindow:
    """At most ``limit`` events in any window of ``period`` stream seconds (bounded deque)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque(maxlen=limit)

    def allows(self, t: float) -> bool:
        return len(self._times) < self.limit or t - self._times[0] >= self.period

    def record(self, t: float) -> None:
        self._times.append(t)


@dataclass
class _SourceState:
    bank: MemoryBank
    windows: list[SlidingWindow]
    offset: float = 0.0
    last_raw: float | None = None
    last_keep: float | None = None
    kept: int = 0
    seen: int = 0

    def stream_time(self, raw: float) -> float:
        """Presentation time made monotonic across pts resets (reconnects, loops)."""
        if self.last_raw is not None and raw < self.last_raw:
            self.offset += self.last_raw - raw
        self.last_raw = raw
        return raw + self.offset


class Collector(Analyzer):
    """Keep/skip policy on frame embeddings; emits :class:`FrameKept` carrying a payload for the store."""

    name = "collector"
    needs_embedding = True

    def __init__(self, cfg: CollectorConfig, embedder: Embedder | None = None) -> None:
        self.cfg = cfg
        if cfg.name:
            self.name = cfg.name
        self.model = None if embedder is None else embedder.model_id
        self._lock = threading.Lock()
        self._states: dict[str, _SourceState] = {}
        self._shared = MemoryBank(cfg.shared_bank_size) if cfg.cross_source else None
        self.counts: Counter[str] = Counter()
        self._pos: np.ndarray | None = None
        self._neg: np.ndarray | None = None
        self.logit_scale = DEFAULT_LOGIT_SCALE
        self.threshold = cfg.effective_prompt_threshold
        self.novelty_threshold = (
            cfg.novelty_threshold
            if cfg.novelty_threshold is not None
            else DEFAULT_NOVELTY.get(str(self.model), DEFAULT_NOVELTY_OTHER)
        )
        if cfg.prompts:
            self._init_prompts(embedder)

    @classmethod
    def from_config(cls, cfg: CollectorConfig, embedder: Embedder | None) -> Collector:
        """Build from config; with ``seed_from`` the memory bank is reloaded from that frame store."""
        collector = cls(cfg, embedder)
        if cfg.seed_from:
            collector.seed_from_store(cfg.seed_from)
        return collector

    # ------------------------------------------------------------------ prompts
    def _init_prompts(self, embedder: Embedder | None) -> None:
        if embedder is None or not embedder.supports_text:
            name = "none" if embedder is None else embedder.name
            raise ConfigError(
                f"collector prompts {self.cfg.prompts!r} need an embedder with a text tower (CLIP); "
                f"embedder {name!r} has none: remove the prompts (novelty still works) or set "
                "engine.model (framesift collect: --model) to an open_clip model with weights"
            )
        negatives = list(self.cfg.negatives)
        if not negatives and self.cfg.prompt_mode == "softmax":
            negatives = list(DEFAULT_NEGATIVES)
        texts = list(self.cfg.prompts) + negatives
        vecs = np.asarray(embedder.embed_texts(texts), dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        n = len(self.cfg.prompts)
        self._pos, self._neg = vecs[:n], vecs[n:]
        scale = self.cfg.logit_scale or embedder.logit_scale or DEFAULT_LOGIT_SCALE
        self.logit_scale = float(scale)

    def relevance(self, e: np.ndarray) -> float | None:
        """Prompt relevance of one embedding (None without prompts)."""
        if self._pos is None or self._neg is None:
            return None
        pos = self._pos @ e
        neg = self._neg @ e
        if self.cfg.prompt_mode == "margin":
            return float(pos.max() - (neg.max() if neg.size else 0.0))
        logits = self.logit_scale * np.concatenate([pos, neg])
        logits -= logits.max()
        p = np.exp(logits)
        p /= p.sum()
        return float(p[: pos.size].sum())

    # ------------------------------------------------------------------ memory bank
    def _state(self, source: str) -> _SourceState:
        st = self._states.get(source)
        if st is None:
            wins = [SlidingWindow(n, period) for key, period in WINDOWS if (n := getattr(self.cfg, key))]
            st = _SourceState(MemoryBank(self.cfg.bank_size), wins)
            self._states[source] = st
        return st

    def seed(self, source: str, embeddings: np.ndarray) -> None:
        """Add already-kept embeddings (oldest first) to the source's bank and the shared bank."""
        with self._lock:
            st = self._state(source)
            for e in np.asarray(embeddings, dtype=np.float32)[-self.cfg.bank_size :]:
                st.bank.add(e)
            if self._shared is not None:
                for e in np.asarray(embeddings, dtype=np.float32)[-self.cfg.shared_bank_size :]:
                    self._shared.add(e)

    def seed_from_store(self, store_dir: str) -> int:
        """Reload the memory banks from a frame store (same model only); returns embeddings loaded."""
        from pathlib import Path

        from framesift.store.index import INDEX_NAME, FrameStore

        if not (Path(store_dir) / INDEX_NAME).is_file():
            return 0
        loaded = 0
        with FrameStore(store_dir, readonly=True) as store:
            models = store.models()
            if not models:
                return 0
            if self.model not in models:
                log.warning(
                    "collector: store %s holds embeddings of %s, not %s: memory bank not reloaded",
                    store_dir, ", ".join(models), self.model,
                )  # fmt: skip
                return 0
            with self._lock:
                for source in store.sources():
                    _, mat = store.recent_embeddings(self.cfg.bank_size, source=source, model=self.model)
                    st = self._state(source)
                    for e in mat:
                        st.bank.add(e)
                    loaded += len(mat)
                if self._shared is not None:
                    _, mat = store.recent_embeddings(self.cfg.shared_bank_size, model=self.model)
                    for e in mat:
                        self._shared.add(e)
        log.info("collector: memory bank reloaded with %d kept frame(s) from %s", loaded, store_dir)
        return loaded

    def bank_sizes(self) -> dict[str, int]:
        """Entries per source bank (and ``*`` for the shared one) — for tests and /status."""
        out = {s: len(st.bank) for s, st in self._states.items()}
        if self._shared is not None:
            out["*"] = len(self._shared)
        return out

    # ------------------------------------------------------------------ the policy
    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        if embedding is None:
            raise EngineError("the collector needs frame embeddings (needs_embedding=True was ignored)")
        e = np.array(embedding, dtype=np.float32).ravel()  # a copy: never pin the batch's array
        with self._lock:
            ev = self._decide(frame, e)
        return () if ev is None else (ev,)

    def _decide(self, frame: Frame, e: np.ndarray) -> FrameKept | None:
        cfg = self.cfg
        st = self._state(frame.source_id)
        st.seen += 1
        t = st.stream_time(frame.seconds)
        sim = st.bank.max_similarity(e)
        if self._shared is not None:
            sim = max(sim, self._shared.max_similarity(e))
        novelty = 1.0 - sim if sim > -1.0 else 1.0
        rel = self.relevance(e)
        reasons: list[str] = []
        if rel is not None and rel >= self.threshold and novelty >= cfg.prompt_min_novelty:
            reasons.append("prompt")
        if novelty >= self.novelty_threshold:
            reasons.append("novel")
        if (
            not reasons
            and cfg.every_s is not None
            and (st.last_keep is None or t - st.last_keep >= cfg.every_s)
        ):
            reasons.append("periodic")
        if not reasons:
            self.counts["skipped:similar"] += 1
            return None
        if st.last_keep is not None and t - st.last_keep < cfg.min_interval_s:
            self.counts["skipped:min_interval"] += 1
            return None
        if not all(w.allows(t) for w in st.windows):
            self.counts["skipped:budget"] += 1
            return None
        for w in st.windows:
            w.record(t)
        st.last_keep = t
        st.kept += 1
        st.bank.add(e)
        if self._shared is not None:
            self._shared.add(e)
        reason = "+".join(reasons)
        self.counts[f"kept:{reasons[0]}"] += 1
        scores = {"novelty": round(novelty, 6)}
        if rel is not None:
            scores["relevance"] = round(rel, 6)
        return FrameKept(
            source=frame.source_id,
            wallclock=frame.wallclock,
            frame_index=frame.index,
            pts=frame.pts,
            time_base=frame.time_base,
            time=frame.seconds,
            reason=reason,
            scores=scores,
            id=f"{frame.source_id}-{frame.index:08d}-{uuid.uuid4().hex[:8]}",
            payload=FramePayload(frame.image, e, self.model),
        )

    def on_end(self, source_id: str) -> Iterable[Event]:
        return ()

    def kept(self, source: str) -> int:
        st = self._states.get(source)
        return 0 if st is None else st.kept
