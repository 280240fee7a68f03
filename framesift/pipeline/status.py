"""The typed status of a running pipeline, read by the services beside it (metrics, HTTP API,
progress) without importing the pipeline itself.

:meth:`PipelineStatus.to_dict` gives the JSON document of ``/status``; the latency histograms ride
along for Prometheus but are not part of it.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from framesift.config import SourceConfig

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class LatencyHistogram:
    """Cumulative-on-read histogram; ``observe`` is called by one thread per instance (no lock)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, n in zip((*[repr(b) for b in self.buckets], "+Inf"), list(self.counts), strict=True):
            acc += n
            out.append((bound, float(acc)))
        return out


class Rate:
    """Frames per second over a sliding window of samples (thread-safe, sampled on read)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def sample(self, count: int) -> float:
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, count))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
                self._samples.popleft()
            t0, n0 = self._samples[0]
            return (count - n0) / (now - t0) if now - t0 >= 0.2 else 0.0


class EventLog:
    """The last ``maxlen`` events, numbered, for readers beside the flow (the web UI's live feed).
    Appending keeps a reference (no copy, no encoding); readers convert what they take."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._items: deque[tuple[int, Any]] = deque(maxlen=maxlen)
        self._seq = 0
        self._lock = threading.Lock()

    def append(self, event: Any) -> None:
        with self._lock:
            self._seq += 1
            self._items.append((self._seq, event))

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int) -> list[tuple[int, Any]]:
        """Events numbered above ``seq`` (oldest first; those pushed out of the window are gone)."""
        with self._lock:
            if not self._items or self._items[-1][0] <= seq:
                return []
            return [item for item in self._items if item[0] > seq]


def drop_stage(cause: str) -> str:
    """Where frames dropped for ``cause`` were lost: decode, buffer, batcher or engine."""
    return {"stale": "batcher", "decode_error": "decode", "engine_error": "engine"}.get(cause, "buffer")


@dataclass(frozen=True)
class SourceInfo:
    """One source: its state, rates, counters, queue and drops by cause."""

    type: str
    live: bool
    state: str
    detail: str
    fps: float
    frames_decoded: int
    frames_skipped: int
    frames_staged: int
    last_index: int
    last_frame_age_s: float | None
    reconnects: int
    queue_depth: int
    capacity: int
    on_full: str
    drops: dict[str, int]
    ended: bool
    node: str | None = None  # the Ray node it runs on (a fleet); None in a local run


@dataclass(frozen=True)
class EngineInfo:
    """An engine (the embedder, or a batched analyzer's detector) and its failures."""

    name: str | None
    state: str  # ok | backoff
    errors: int
    consecutive_failures: int


@dataclass(frozen=True)
class StageInfo:
    """The batching stage: batches and frames so far, the analyzers, the engines' health."""

    batches: int
    frames: int
    analyzers: list[str]
    error: str | None
    engine: EngineInfo
    batched_analyzers: list[EngineInfo]


@dataclass(frozen=True)
class SinkInfo:
    """One sink: queued events, the worker's counters, the sink's own counters, its last error."""

    backlog: int
    counts: dict[str, int]
    stats: dict[str, Any]
    last_error: str | None


@dataclass(frozen=True)
class PipelineStatus:
    """A snapshot of the whole pipeline."""

    state: str  # new | running | stopping | stopped
    uptime_s: float
    sources: dict[str, SourceInfo]
    stage: StageInfo
    sinks: dict[str, SinkInfo]
    control: bool
    #: (source, stage) → capture→stage / capture→sink latency; for metrics, not in ``to_dict``
    latency: dict[tuple[str, str], LatencyHistogram] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``/status``."""
        return {
            "state": self.state,
            "uptime_s": self.uptime_s,
            "sources": {sid: asdict(s) for sid, s in self.sources.items()},
            "stage": asdict(self.stage),
            "sinks": {name: asdict(s) for name, s in self.sinks.items()},
            "control": self.control,
        }


class StatusSource(Protocol):
    """What the services read: a status snapshot and whether the pipeline is healthy."""

    def status(self) -> PipelineStatus: ...

    def healthy(self) -> bool: ...


class SourceControl(StatusSource, Protocol):
    """What the live-control API drives: add and remove sources of a running pipeline; what the live
    pages show: the recent events and each source's latest frame."""

    events: EventLog

    def latest_image(self, source_id: str) -> Any | None:
        """The latest staged frame's image of ``source_id`` (an array), or None."""
        ...

    def add_source(self, cfg: SourceConfig) -> str: ...

    def remove_source(self, source_id: str) -> SourceInfo: ...
