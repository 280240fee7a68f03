"""The sink set: every sink on its own worker thread, the fan-out of events to them, the flush
barrier (wait until what was queued so far is delivered), and capture→sink latency per source."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Sequence

from framesift.config import SinkConfig
from framesift.errors import WorkerError
from framesift.events import Event
from framesift.log import redact
from framesift.pipeline.status import LatencyHistogram, SinkInfo
from framesift.sinks.base import Sink, SinkWorker

log = logging.getLogger("framesift.pipeline")

SINK_DRAIN_S = 10.0
_ORIGINS_MAX = 4096


class SinkSet:
    """Builds the configured and the programmatic sinks and runs each on a :class:`SinkWorker`.

    ``block``: when a sink's queue is full (``on_full: auto``), wait for it rather than drop — what a
    pipeline of files wants (nothing lost); pipelines with live sources drop instead.
    """

    def __init__(self, configs: Sequence[SinkConfig], extra: Sequence[Sink], *, block: bool) -> None:
        self.workers: list[SinkWorker] = []
        self._queued: dict[str, int] = {}  # worker name → events queued
        self._done: dict[str, int] = {}  # worker name → events written or given up
        self._cond = threading.Condition()
        # id(event) → (weak ref to it, source, capture wallclock): latency without keeping events alive
        self._origins: dict[int, tuple[weakref.ref[Event], str, float]] = {}
        self._origins_lock = threading.Lock()
        self.latency: dict[str, LatencyHistogram] = {}
        names: set[str] = set()

        def unique(name: str) -> str:
            out, n = name, 1
            while out in names:
                n += 1
                out = f"{name}-{n}"
            names.add(out)
            return out

        for cfg in configs:
            sink = cfg.implementation_target().from_config(cfg)
            sink.name = unique(cfg.name or sink.name or cfg.type_name())
            self._add(
                sink,
                queue_size=cfg.queue_size,
                event_types=set(cfg.events) if cfg.events is not None else None,
                max_retries=cfg.max_retries,
                retry_initial_s=cfg.retry_initial_s,
                retry_max_s=cfg.retry_max_s,
                block=block if cfg.on_full == "auto" else cfg.on_full == "block",
            )
        for sink in extra:
            sink.name = unique(sink.name or type(sink).__name__.lower())
            self._add(sink, block=block)

    def _add(self, sink: Sink, **options: object) -> None:
        name = sink.name
        worker = SinkWorker(sink, on_done=lambda ev: self._on_done(name, ev), **options)  # type: ignore[arg-type]
        self.workers.append(worker)
        self._queued[name] = self._done[name] = 0

    def start(self) -> None:
        """Open every sink (open errors surface here) and start the workers."""
        for w in self.workers:
            w.start()

    def submit(self, event: Event, origin: tuple[str, float] | None = None) -> None:
        """Queue ``event`` on every sink that takes it; ``origin`` (source, capture wallclock) times
        its delivery."""
        if origin is not None:
            with self._origins_lock:
                self._origins[id(event)] = (weakref.ref(event), *origin)
                if len(self._origins) > _ORIGINS_MAX:
                    del self._origins[next(iter(self._origins))]
        for w in self.workers:
            if w.submit(event):
                with self._cond:
                    self._queued[w.name] += 1

    def _on_done(self, name: str, event: Event) -> None:
        """Called by worker ``name``'s thread after it finished with ``event``."""
        with self._origins_lock:
            origin = self._origins.get(id(event))
        if origin is not None and origin[0]() is event:
            hist = self.latency.get(origin[1])
            if hist is None:
                hist = self.latency.setdefault(origin[1], LatencyHistogram())
            hist.observe(time.time() - origin[2])
        with self._cond:
            self._done[name] += 1
            self._cond.notify_all()

    def forget(self, source_id: str) -> None:
        """Drop a removed source's latency histogram."""
        self.latency.pop(source_id, None)

    def flush(self, timeout: float = SINK_DRAIN_S) -> bool:
        """Wait until every event queued so far has been written (or given up) by its sink."""
        deadline = time.monotonic() + timeout
        workers = {w.name: w for w in self.workers}
        with self._cond:
            target = dict(self._queued)
            while True:
                behind = [n for n, k in target.items() if workers[n].error is None and self._done[n] < k]
                if not behind:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("sinks %s did not deliver their backlog in %.1fs", ", ".join(behind), timeout)
                    return False
                self._cond.wait(min(0.1, left))

    def stop(self) -> None:
        """Shutdown: every sink delivers what is queued (within its drain time) and closes."""
        for w in self.workers:
            drain = w.sink.drain_s
            w.stop(drain=True, timeout=None if drain is None else min(drain, SINK_DRAIN_S))
        for w in self.workers:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(w.counts.items())) or "nothing"
            log.info("sink %s: %d events queued; %s", w.name, self._queued[w.name], counts)

    def infos(self) -> dict[str, SinkInfo]:
        return {
            w.name: SinkInfo(
                backlog=w.backlog,
                counts=dict(w.counts),
                stats=dict(w.sink.stats),
                last_error=None if w.last_error is None else redact(w.last_error),
            )
            for w in self.workers
        }

    def failure(self) -> WorkerError | None:
        """A sink that crashed (a bug in it), as the error the pipeline raises."""
        for w in self.workers:
            if w.error is not None:
                err = WorkerError(
                    f"sink {w.name}: {type(w.error).__name__}: {w.error}", worker=f"sink:{w.name}"
                )
                err.__cause__ = w.error
                return err
        return None
