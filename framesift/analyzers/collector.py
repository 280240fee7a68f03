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

**Shots** (``shots: true``, the default): the collector reads the scene_change analyzer's boundaries
from the same pipeline and keeps at most one frame per shot (or per part of a long shot whose
content drifts by the novelty threshold): the sharpest, most contrasted candidate that passed the
quality gate and lies outside every transition (:mod:`framesift.analyzers.collector_shots`). A
shot's frame is kept when it is novel against the memory bank (``shot`` or ``novel``) or matches a
prompt (``prompt``). Files decide at the end of each shot; live sources at most ``decide_after_s``
after a shot starts. With a **total budget** (``budget: N``, files) the N frames that best cover the
source are kept when it ends (:mod:`framesift.analyzers.collector_select`).

With ``shots: false`` every frame is judged on its own: ``prompt``, ``novel`` and the rules below.

Rate budgets are paced (:mod:`framesift.analyzers.collector_pacing`); the periodic keep
(``every_s``) is neither gated nor shot-bound. Times are stream time, monotonic across pts resets.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from framesift.analyzers.base import Analyzer
from framesift.analyzers.collector_pacing import WINDOWS, Pacer, SlidingWindow
from framesift.analyzers.collector_prompts import DEFAULT_LOGIT_SCALE, DEFAULT_NEGATIVES, Prompts
from framesift.analyzers.collector_select import Choice, Pool, ranker, select
from framesift.analyzers.collector_shots import EXTRAS, Candidate, Gate, Segment, ShotTracker, measure
from framesift.analyzers.collector_state import MemoryBank, SourceState, stored_embeddings
from framesift.config.base import AnalyzerSpec
from framesift.engines.base import Embedder
from framesift.errors import ConfigError, EngineError
from framesift.events import Event, FrameKept, FramePayload, SceneChange
from framesift.frame import Frame, picture

log = logging.getLogger("framesift.analyzers.collector")

__all__ = ["DEFAULT_NEGATIVES", "Collector", "CollectorConfig", "MemoryBank", "SlidingWindow"]


class CollectorConfig(AnalyzerSpec):
    """Keep frames worth labelling: the best frame of each new shot, prompt matches, a periodic
    baseline — within a budget.

    All times count in stream time (presentation timestamps), so a file processed faster than real
    time keeps the same frames as the same video watched live.
    """

    type: Literal["collector"] = "collector"
    implementation: ClassVar[str] = "Collector"

    name: str | None = None
    shots: bool = Field(
        True,
        description="keep at most one frame per shot (or per drift of a long shot), chosen among "
        "clean candidates; reads a scene_change analyzer (added with its defaults when missing)",
    )
    budget: int | None = Field(
        None,
        ge=1,
        le=10_000_000,
        description="total keeps per source for the run, the N frames that best cover it (files; a "
        "live source needs a rate budget)",
    )
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
    burst: int | None = Field(
        None, ge=1, le=1_000_000, description="keeps a rate budget grants at once (default: N/10, at least 1)"
    )
    min_interval_s: float = Field(0.0, ge=0.0, description="stream seconds between two keeps of a source")
    every_s: float | None = Field(None, gt=0, description="periodic baseline keep every N stream seconds")
    decide_after_s: float = Field(
        2.0, gt=0, description="live sources: a shot's frame is chosen at most this long after it starts"
    )
    candidates_per_s: float = Field(4.0, gt=0, le=1000, description="frames judged per stream second")
    min_brightness: float = Field(20.0, ge=0, le=255, description="quality gate: mean luma floor")
    max_brightness: float = Field(235.0, ge=0, le=255, description="quality gate: mean luma ceiling")
    min_contrast: float = Field(8.0, ge=0, description="quality gate: luma standard deviation floor")
    min_sharpness: float = Field(
        15.0, ge=0, description="quality gate: variance of the Laplacian floor (on a 320-wide grey copy)"
    )
    adaptive_gate: bool = Field(
        True, description="floors follow the source's own range (at most half its median): night cameras"
    )
    seed_from: str | None = Field(None, description="frame store directory to reload the memory bank from")

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if self.negatives and not self.prompts:
            raise ValueError("negatives given without prompts: add at least one positive prompt")
        if self.budget is not None:
            if not self.shots:
                raise ValueError("a total budget needs shots: true (it picks one frame per shot first)")
            if self.every_s is not None or any(getattr(self, k) for k, _ in WINDOWS):
                raise ValueError(
                    "budget (a total, --budget N) goes alone: drop every_s and max_per_* (--every, "
                    "--budget N/h; rate budgets are for live sources)"
                )
        return self

    @property
    def effective_prompt_threshold(self) -> float:
        if self.prompt_threshold is not None:
            return self.prompt_threshold
        return 0.5 if self.prompt_mode == "softmax" else 0.02


#: Novelty thresholds when the config leaves it unset: ``pixel`` calibrated on real footage
#: (bench/collect.py); CLIP-like embedders get a conservative value (not calibrated: no weights here).
DEFAULT_NOVELTY = {"pixel": 0.35}
DEFAULT_NOVELTY_OTHER = 0.15


class Collector(Analyzer):
    """Keep/skip policy on frame embeddings; emits :class:`FrameKept` carrying a payload for the store."""

    name = "collector"
    needs_embedding = True
    produces = (FrameKept,)

    def __init__(self, cfg: CollectorConfig, embedder: Embedder | None = None) -> None:
        self.cfg = cfg
        if cfg.name:
            self.name = cfg.name
        self.consumes = (SceneChange,) if cfg.shots else ()
        self.model = None if embedder is None else embedder.model_id
        self._lock = threading.Lock()
        self._states: dict[str, SourceState] = {}
        self._live: dict[str, bool] = {}
        self._shared = MemoryBank(cfg.shared_bank_size) if cfg.cross_source else None
        self.counts: Counter[str] = Counter()
        self.prompts: Prompts | None = None
        self.logit_scale = DEFAULT_LOGIT_SCALE
        self.threshold = cfg.effective_prompt_threshold
        self.novelty_threshold = (
            cfg.novelty_threshold
            if cfg.novelty_threshold is not None
            else DEFAULT_NOVELTY.get(str(self.model), DEFAULT_NOVELTY_OTHER)
        )
        self.delay_frames = 0  # how late the scene detector may report a boundary (see bind)
        if cfg.prompts:
            self._init_prompts(embedder)

    @classmethod
    def from_config(cls, cfg: CollectorConfig, embedder: Embedder | None) -> Collector:
        """Build from config; with ``seed_from`` the memory bank is reloaded from that frame store."""
        collector = cls(cfg, embedder)
        if cfg.seed_from:
            collector.seed_from_store(cfg.seed_from)
        return collector

    def companions(self) -> list[AnalyzerSpec]:
        """Shots need a scene_change analyzer: the pipeline adds one (defaults) when none runs."""
        from framesift.analyzers.scene_change import SceneChangeConfig

        return [SceneChangeConfig()] if self.cfg.shots else []

    def bind(self, peers: list[Analyzer]) -> None:
        """Settle candidates only once the slowest SceneChange producer can no longer move them."""
        self.delay_frames = max(
            (p.delay_frames for p in peers if p is not self and SceneChange in p.produces), default=0
        )

    def on_source(self, source_id: str, live: bool) -> None:
        """A live source chooses a shot's frame within ``decide_after_s`` and refuses a total budget."""
        if live and self.cfg.budget is not None:
            raise ConfigError(
                f"source {source_id}: a total budget ({self.cfg.budget}) needs a source that ends; "
                "on a live source use a rate (framesift collect: --budget 100/h)"
            )
        with self._lock:
            self._live[source_id] = live

    def _init_prompts(self, embedder: Embedder | None) -> None:
        c = self.cfg
        self.prompts = Prompts.build(c.prompts, c.negatives, c.prompt_mode, c.logit_scale, embedder)
        self.logit_scale = self.prompts.logit_scale

    def relevance(self, e: np.ndarray) -> float | None:
        """Prompt relevance of one embedding (None without prompts)."""
        return None if self.prompts is None else self.prompts.relevance(e)

    def _state(self, source: str) -> SourceState:
        st = self._states.get(source)
        if st is None:
            c = self.cfg
            budgets = [(n, period) for key, period in WINDOWS if (n := getattr(c, key))]
            gate = Gate(c.min_brightness, c.max_brightness, c.min_contrast, c.min_sharpness, c.adaptive_gate)
            pool = None if c.budget is None else Pool(c.budget)
            pacer = Pacer(budgets, c.burst, c.min_interval_s)
            st = SourceState(MemoryBank(c.bank_size), pacer, None, gate, pool)
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
        per_source, shared = stored_embeddings(
            store_dir, self.model, self.cfg.bank_size, self.cfg.shared_bank_size if self._shared else 0
        )
        with self._lock:
            for source, mat in per_source.items():
                st = self._state(source)
                for e in mat:
                    st.bank.add(e)
            if self._shared is not None:
                for e in shared:
                    self._shared.add(e)
        loaded = sum(len(m) for m in per_source.values())
        if per_source:
            log.info("collector: memory bank reloaded with %d kept frame(s) from %s", loaded, store_dir)
        return loaded

    def bank_sizes(self) -> dict[str, int]:
        """Entries per source bank (and ``*`` for the shared one) — for tests and /status."""
        out = {s: len(st.bank) for s, st in self._states.items()}
        if self._shared is not None:
            out["*"] = len(self._shared)
        return out

    def wants_embedding(self, frame: Frame) -> bool:
        """Shots judge only candidates (and a due periodic keep): the other frames need no embedding."""
        if not self.cfg.shots:
            return True
        with self._lock:
            return self._plan(self._state(frame.source_id), frame)

    def _plan(self, st: SourceState, frame: Frame) -> bool:
        """Whether ``frame`` is a candidate: one every 1/candidates_per_s stream seconds, decided once
        per frame, in order (by :meth:`wants_embedding` ahead of :meth:`on_frame`, or by the latter)."""
        planned = st.planned.get(frame.index)
        if planned is not None:
            return planned
        t = st.plan_time(frame.seconds)
        due = st.last_candidate is None or t - st.last_candidate >= 1.0 / self.cfg.candidates_per_s
        if due:
            st.last_candidate = t
        elif self.cfg.every_s is not None:
            last = st.last_keep if st.last_keep is not None else st.first
            due = last is None or t - last >= self.cfg.every_s
        st.planned[frame.index] = due
        while len(st.planned) > 4096:  # frames planned but never seen (a dropped batch)
            del st.planned[next(iter(st.planned))]
        return due

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        with self._lock:
            st = self._state(frame.source_id)
            candidate = self._plan(st, frame) if self.cfg.shots else True
            st.planned.pop(frame.index, None)
            if embedding is None:
                if candidate:
                    raise EngineError(
                        "the collector needs frame embeddings (needs_embedding=True was ignored)"
                    )
                e = None
            else:
                e = np.array(embedding, dtype=np.float32).ravel()  # a copy: never pin the batch's array
            st.seen += 1
            t = st.stream_time(frame.seconds)
            if st.first is None:  # its first frame: the pipeline is assembled and the source known
                st.first = t
                st.live = self._live.get(frame.source_id, False)
                if self.cfg.shots:
                    decide = self.cfg.decide_after_s if st.live else None
                    extras = EXTRAS if self.cfg.budget is not None else 0
                    st.tracker = ShotTracker(self.delay_frames, self.novelty_threshold, decide, extras)
            if st.tracker is None:
                assert e is not None
                ev = self._decide(frame, e, st, t)
                if ev is None and self._periodic_due(st, t, since_start=False):
                    ev = self._periodic(frame, e, st, t)
                return () if ev is None else (ev,)
            if e is not None and self._periodic_due(st, t, since_start=True):
                periodic = self._periodic(frame, e, st, t)
                if periodic is not None:
                    return (periodic,)
            cand = self._candidate(frame, e, st, t) if candidate and e is not None else None
            return self._closed(frame.source_id, st, st.tracker.add(cand, frame.index))

    def on_event(self, event: Event) -> Iterable[Event]:
        if not isinstance(event, SceneChange):
            return ()
        with self._lock:
            st = self._state(event.source)
            if st.tracker is None:
                return ()
            start = event.frame_index if event.transition_start is None else event.transition_start
            end = event.frame_index if event.transition_end is None else event.transition_end
            closed = st.tracker.boundary(event.frame_index, start, end, event.kind != "cut")
            return self._closed(event.source, st, closed)

    def on_end(self, source_id: str) -> Iterable[Event]:
        with self._lock:
            st = self._states.get(source_id)
            if st is None or st.tracker is None:
                return ()
            events = self._closed(source_id, st, st.tracker.end())
            if st.pool is not None:
                events += self._spend_total(source_id, st, st.pool)
            return events

    def _candidate(self, frame: Frame, e: np.ndarray, st: SourceState, t: float) -> Candidate | None:
        """A planned candidate, measured and gated."""
        q = measure(image := picture(frame))  # full size, where the frame itself is an analysis frame
        why = st.gate.check(q)
        if why is not None:
            self.counts[f"gated:{why}"] += 1
        pixels = None if why is not None else np.asarray(image)
        return Candidate(
            frame.index,
            t,
            frame.seconds,
            frame.pts,
            frame.time_base,
            frame.wallclock,
            e,
            q,
            why is None,
            pixels,
        )

    def _novelty(self, e: np.ndarray, st: SourceState) -> float:
        sim = self._similarity(e, st)
        return 1.0 - sim if sim > -1.0 else 1.0

    def _similarity(self, e: np.ndarray, st: SourceState) -> float:
        sim = st.bank.max_similarity(e)
        return sim if self._shared is None else max(sim, self._shared.max_similarity(e))

    def _closed(self, source: str, st: SourceState, segments: list[Segment]) -> list[Event]:
        """Closed segments: into the pool (total budget), or judged now (rate budgets, no budget)."""
        out: list[Event] = []
        for seg in segments:
            if seg.best is None:
                self.counts["skipped:no_clean_frame"] += 1
                continue
            if st.pool is not None:
                st.pool.add(seg, ranker(lambda e: self._similarity(e, st), self.relevance, self._prompt_bar))
                continue
            c = seg.best
            novelty, rel = self._novelty(c.emb, st), self.relevance(c.emb)
            if rel is not None and rel >= self.threshold and novelty >= self.cfg.prompt_min_novelty:
                reason = "prompt"
            elif novelty >= self.novelty_threshold:
                reason = seg.kind
            else:
                self.counts["skipped:similar"] += 1
                continue
            refusal = st.pacer.refusal(c.time)
            if refusal is not None:
                self.counts[f"skipped:{refusal}"] += 1
                continue
            out.append(self._keep(source, st, c, reason, novelty, rel))
        return out

    @property
    def _prompt_bar(self) -> float | None:
        return self.threshold if self.prompts is not None else None

    def _spend_total(self, source: str, st: SourceState, pool: Pool) -> list[Event]:
        """The source ended: keep the N frames that best cover it, in time order."""
        choices: list[Choice] = select(
            pool.segments,
            pool.n,
            bank_similarity=lambda e: self._similarity(e, st),
            relevance=self.relevance,
            threshold=self.novelty_threshold,
            prompt_threshold=self._prompt_bar,
        )
        pool.segments = []
        if len(choices) < pool.n:
            log.warning(
                "collector: source %s: kept %d of a budget of %d (only so many clean, distinct frames)",
                source, len(choices), pool.n,
            )  # fmt: skip
            self.counts["short_of_budget"] += pool.n - len(choices)
        choices.sort(key=lambda ch: ch.candidate.time)
        return [self._keep(source, st, ch.candidate, ch.reason, ch.novelty, ch.relevance) for ch in choices]

    def _periodic_due(self, st: SourceState, t: float, *, since_start: bool) -> bool:
        """No keep for ``every_s``: counted from the last keep, else (shots) from the first frame."""
        every = self.cfg.every_s
        if every is None:
            return False
        last = st.last_keep if st.last_keep is not None else (st.first if since_start else None)
        return last is None or t - last >= every

    def _periodic(self, frame: Frame, e: np.ndarray, st: SourceState, t: float) -> FrameKept | None:
        """The baseline keep: not gated, not shot-bound, but within the rate budgets."""
        if st.pacer.refusal(t) is not None:
            return None
        c = Candidate(
            frame.index, t, frame.seconds, frame.pts, frame.time_base, frame.wallclock, e,
            measure(image := picture(frame)), True, np.asarray(image),
        )  # fmt: skip
        return self._keep(frame.source_id, st, c, "periodic", self._novelty(e, st), self.relevance(e))

    def _decide(self, frame: Frame, e: np.ndarray, st: SourceState, t: float) -> FrameKept | None:
        """``shots: false``: judge the frame on its own."""
        novelty, rel = self._novelty(e, st), self.relevance(e)
        reasons: list[str] = []
        if rel is not None and rel >= self.threshold and novelty >= self.cfg.prompt_min_novelty:
            reasons.append("prompt")
        if novelty >= self.novelty_threshold:
            reasons.append("novel")
        if not reasons:
            self.counts["skipped:similar"] += 1
            return None
        refusal = st.pacer.refusal(t)
        if refusal is not None:
            self.counts[f"skipped:{refusal}"] += 1
            return None
        c = Candidate(
            frame.index, t, frame.seconds, frame.pts, frame.time_base, frame.wallclock, e, {}, True,
            np.asarray(picture(frame)),
        )  # fmt: skip
        return self._keep(frame.source_id, st, c, "+".join(reasons), novelty, rel)

    def _keep(
        self, source: str, st: SourceState, c: Candidate, reason: str, novelty: float, rel: float | None
    ) -> FrameKept:
        st.pacer.record(c.time)
        st.last_keep = c.time
        st.kept += 1
        st.bank.add(c.emb)
        if self._shared is not None:
            self._shared.add(c.emb)
        self.counts[f"kept:{reason.split('+')[0]}"] += 1
        scores = {"novelty": round(novelty, 6), **c.quality}
        if rel is not None:
            scores["relevance"] = round(rel, 6)
        image = c.image()
        return FrameKept(
            source=source,
            wallclock=c.wallclock,
            frame_index=c.index,
            pts=c.pts,
            time_base=c.time_base,
            time=c.seconds,
            reason=reason,
            scores=scores,
            id=f"{source}-{c.index:08d}-{uuid.uuid4().hex[:8]}",
            payload=FramePayload(image, c.emb, self.model),
        )

    def kept(self, source: str) -> int:
        st = self._states.get(source)
        return 0 if st is None else st.kept
