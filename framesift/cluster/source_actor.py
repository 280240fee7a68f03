"""One source of a fleet (``framesift run --ray``) as a Ray actor: an ordinary :class:`Pipeline` over
that source with the config's analyzers, whose only sink is an :class:`Outbox` holding the events
(bounded, with a drop counter) until the driver polls them. Frames stay in the actor; only events,
without their in-process fields (images, embeddings), and a small status travel.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from framesift.config import PipelineConfig, SourceConfig
from framesift.events import Event, in_process_stripped
from framesift.pipeline.status import EngineInfo, PipelineStatus, SourceInfo, StageInfo
from framesift.sinks.base import Sink

OUTBOX = "fleet_outbox"
PREVIEW_WIDTH = 320


class Outbox(Sink):
    """Events waiting for the driver: at most ``capacity``; more are dropped and counted."""

    name = OUTBOX

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Event] = deque()
        self._lock = threading.Lock()
        self.dropped = 0

    def write(self, event: Event) -> None:
        with self._lock:
            if len(self._items) >= self.capacity:
                self.dropped += 1
            else:
                self._items.append(in_process_stripped(event))

    def take(self, limit: int) -> list[Event]:
        with self._lock:
            return [self._items.popleft() for _ in range(min(limit, len(self._items)))]

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Report:
    """What an actor answers each poll: a batch of events, its pipeline's status and its counters."""

    events: list[Event] = field(default_factory=list)
    status: PipelineStatus | None = None
    #: events still queued on the node after this batch (the outbox + its sink worker's queue)
    pending: int = 0
    #: events the node dropped so far because the driver fell behind (outbox or sink queue full)
    dropped: int = 0
    error: str | None = None


class SourceActor:
    """Runs the pipeline of one source; created by :class:`framesift.cluster.fleet.Fleet`.

    A failure to build or start is kept and answered by :meth:`ready` (one line), not raised, so the
    driver can tell it from a lost node.
    """

    def __init__(self, config: PipelineConfig, event_queue: int) -> None:
        from framesift.pipeline import Pipeline

        self.error: str | None = None
        self.outbox = Outbox(event_queue)
        self.pipeline: Pipeline | None = None
        try:
            self.pipeline = Pipeline(config, sinks=[self.outbox])
            self.pipeline.start()
        except Exception as exc:  # answered by ready(): the driver raises it as one line
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def ready(self) -> tuple[str, str | None]:
        """(the Ray node id it runs on, its start failure or None)."""
        import ray

        return str(ray.get_runtime_context().get_node_id()), self.error

    def poll(self, limit: int) -> Report:
        """Up to ``limit`` events, oldest first, with the status and counters after taking them."""
        return self._report(self.outbox.take(limit))

    def stop(self) -> Report:
        """Drain the pipeline (capture stops, the stage and sinks flush), then every event left."""
        if self.pipeline is not None:
            self.pipeline.stop()
        return self._report(self.outbox.take(len(self.outbox)))

    def preview(self, source_id: str) -> Any | None:
        """The latest frame of the source, shrunk to about :data:`PREVIEW_WIDTH` pixels wide."""
        image = None if self.pipeline is None else self.pipeline.latest_image(source_id)
        width = getattr(image, "shape", (0, 0))[1] if image is not None else 0
        if image is None or not width:
            return None
        step = max(1, -(-width // PREVIEW_WIDTH))
        return image[::step, ::step].copy()  # type: ignore[index]

    def _report(self, events: list[Event]) -> Report:
        if self.pipeline is None:
            return Report(events, error=self.error)
        status = self.pipeline.status()
        sink = status.sinks.get(OUTBOX)
        backlog = sink.backlog if sink is not None else 0
        queue_full = sink.counts.get("dropped:queue_full", 0) if sink is not None else 0
        error = None
        try:
            self.pipeline.raise_errors()
        except Exception as exc:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Report(
            events,
            replace(status, latency={}),
            pending=len(self.outbox) + backlog,
            dropped=self.outbox.dropped + queue_full,
            error=error,
        )


def placeholder_info(cfg: SourceConfig, detail: str) -> SourceInfo:
    """The status of a source whose actor has not reported yet."""
    return SourceInfo(
        type=cfg.type_name(), live=cfg.live, state="connecting", detail=detail, fps=0.0, frames_decoded=0,
        frames_skipped=0, frames_staged=0, last_index=-1, last_frame_age_s=None, reconnects=0, queue_depth=0,
        capacity=cfg.buffer.capacity, on_full=cfg.buffer.on_full or "drop_oldest", drops={}, ended=False,
    )  # fmt: skip


def merged_stage(stages: list[StageInfo], analyzers: list[str]) -> StageInfo:
    """The stages of several actors as one: counts and engine errors summed, the first error."""
    if not stages:
        return StageInfo(0, 0, analyzers, None, EngineInfo(None, "ok", 0, 0), [])
    first = stages[0]
    return StageInfo(
        batches=sum(s.batches for s in stages),
        frames=sum(s.frames for s in stages),
        analyzers=first.analyzers,
        error=next((s.error for s in stages if s.error), None),
        engine=replace(first.engine, errors=sum(s.engine.errors for s in stages)),
        batched_analyzers=first.batched_analyzers,
    )
