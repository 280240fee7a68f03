"""The pipeline: sources → capture threads → ring buffers → stage (batcher, engines, analyzers) → sinks.

It owns every thread of the flow, surfaces every worker's failure in the caller with the source or
sink named, and shuts down in order: capture stops → the stage drains the buffers → analyzers'
``on_end`` → sinks drain and close. Services beside the flow (metrics, HTTP API, progress) and the
process's signals belong to the caller (see :mod:`framesift.services`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from framesift.analyzers.base import Analyzer
from framesift.config import PipelineConfig, SourceConfig
from framesift.engines.base import Embedder
from framesift.errors import FramesiftError, NotAccepting, SourceIdTaken, WorkerError
from framesift.events import Event, SourceStatus
from framesift.frame import Frame
from framesift.log import redact
from framesift.pipeline.sinks import SinkSet
from framesift.pipeline.sources import SourceRun, SourceSet
from framesift.pipeline.stage import ENGINE_BACKOFF_S, Stage
from framesift.pipeline.status import EventLog, PipelineStatus, SourceInfo
from framesift.sinks.base import Sink
from framesift.threads import limit_opencv, thread_plan

log = logging.getLogger("framesift.pipeline")

__all__ = ["Pipeline"]

REMOVE_TIMEOUT_S = 30.0


class Pipeline:
    """Runs a :class:`PipelineConfig`; programmatic embedder, analyzers and sinks may be added.

    Use :meth:`run` (start, wait until every source has ended, stop) or the context manager::

        with Pipeline(cfg, sinks=[MySink()]) as p:
            p.join()

    With ``metrics.control`` on, sources may be added and removed while it runs, and a pipeline
    whose sources have all ended waits for new ones until it is stopped.
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        embedder: Embedder | None = None,
        analyzers: list[Analyzer] | None = None,
        sinks: list[Sink] | None = None,
        embedder_factory: Callable[[], Embedder] | None = None,
        engine_backoff_s: tuple[float, float] = ENGINE_BACKOFF_S,
    ) -> None:
        self.config = config
        own = False
        if embedder is None and embedder_factory is None and any(a.uses_embedder() for a in config.analyzers):
            from framesift.engines.factory import build_embedder

            def embedder_factory() -> Embedder:
                return build_embedder(config.engine)

        if embedder is None and embedder_factory is not None:
            embedder, own = embedder_factory(), True
        built = [acfg.implementation_target().from_config(acfg, embedder) for acfg in config.analyzers]
        self.accepts_sources = bool(config.metrics.enabled and config.metrics.control)
        self._stop_requested = threading.Event()
        self._wake = threading.Event()
        self._state = "new"  # new → running → stopping → stopped
        self._finish_lock = threading.Lock()
        self._status_lock = threading.Lock()  # a source's terminal status vs. the stage ending it
        self._started_at = 0.0
        self.events = EventLog()
        self.stage = Stage(
            config.stage,
            assemble(built + list(analyzers or []), embedder),
            self._emit,
            embedder=embedder,
            embedder_factory=embedder_factory,
            own_embedder=own,
            engine_backoff_s=engine_backoff_s,
            keep_waiting=self._keep_waiting,
            on_ended=self._source_flushed,
        )
        model = any(a.runs_detector() for a in config.analyzers) or (
            embedder is not None and not embedder.model_id.startswith("pixel")
        )
        self.threads = thread_plan(model=model)
        limit_opencv(self.threads)
        log.info("threads: %s", self.threads.reason)
        self.sources = SourceSet(
            self.stage.batcher, self._on_status, decode_threads=self.threads.decode, on_added=self._on_added
        )
        self.stage.sources = self.sources
        self.sinks = SinkSet(config.sinks, list(sinks or []), block=all(s.ends() for s in config.sources))

    @property
    def analyzers(self) -> list[Analyzer]:
        return self.stage.analyzers

    @property
    def embedder(self) -> Embedder | None:
        return self.stage.embedder

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Build the sources, open the sinks, then start the stage and the capture threads."""
        if self._state != "new":
            raise RuntimeError("a Pipeline can be started once")
        self._state = "running"
        self._started_at = time.time()
        try:
            self.sources.build(self.config.sources)
            self.sinks.start()
            self.stage.start(on_failure=self.request_stop)
            self.sources.start_all()
        except BaseException:
            self._finish()
            raise

    def request_stop(self) -> None:
        """Ask for a drain (from any thread, a signal handler included); :meth:`join` then returns."""
        self._stop_requested.set()
        self._wake.set()

    def stop(self) -> None:
        """Drain and shut down in order; idempotent. Does not raise worker failures (``join`` does)."""
        self.request_stop()
        self._finish()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every source has ended (or a stop was requested), flush everything, then raise
        the first worker failure. Returns False if ``timeout`` passed first (nothing is stopped)."""
        if self._state == "new":
            raise RuntimeError("Pipeline.join() before start()")
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state == "running":
            if self._stop_requested.is_set() or self.stage.error is not None:
                break
            # With the control API on, an emptied pipeline waits for new sources.
            if (self.sources.runs or not self.accepts_sources) and self.sources.all_done():
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._wake.wait(0.1 if remaining is None else min(0.1, remaining))
            self._wake.clear()
        self._finish()
        self.raise_errors()
        return True

    def run(self) -> None:
        """start + join + stop."""
        try:
            self.start()
            self.join()
        finally:
            self.stop()

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _finish(self) -> None:
        """Ordered shutdown; runs once."""
        with self._finish_lock:
            if self._state in ("stopping", "stopped"):
                return
            self._state = "stopping"
            try:
                self.sources.stop_capture(stage_alive=self.stage.alive)  # 1. capture stops
                self.stage.drain()  # 2. the stage drains the buffers, analyzers' on_end
                for sid in list(self.sources.runs):  # statuses still held (a stage that failed)
                    self._source_flushed(sid)
                self.stage.close_engine()
                self.sinks.stop()  # 3. sinks deliver what is queued and close
            finally:
                self._state = "stopped"

    def raise_errors(self) -> None:
        """Raise the first failure: the stage, then sources (a SourceError as itself), then sinks."""
        exc = self.stage.error
        if exc is not None:
            if isinstance(exc, WorkerError):
                raise exc
            if isinstance(exc, FramesiftError):
                raise WorkerError(f"stage: {exc}", worker="stage") from exc
            raise WorkerError(f"stage failed: {type(exc).__name__}: {exc}", worker="stage") from exc
        failure = self.sources.failure() or self.sinks.failure()
        if failure is not None:
            raise failure

    def _keep_waiting(self) -> bool:
        """Whether the stage waits for new sources when none is left."""
        return self.accepts_sources and self._state == "running" and not self._stop_requested.is_set()

    # -- live control ------------------------------------------------------------------------------

    def add_source(self, cfg: SourceConfig) -> str:
        """Start a new source in the running pipeline; returns its id. The others are not touched.

        Raises ConfigError when its id is taken (or the pipeline is not running), SourceError when
        it cannot be built (e.g. an unavailable decoder); a source that cannot connect is added and
        reports its state as usual.
        """
        from framesift.stream.factory import source_id_for

        with self.sources.lock:
            if self._state != "running" or self._stop_requested.is_set():
                raise NotAccepting(f"pipeline is {self._state}: sources can be added only while it runs")
            sid = source_id_for(cfg)
            if sid in self.sources.runs:
                raise SourceIdTaken(f"source id {sid!r} is already in use (choose another id)")
            run = self.sources.make(cfg, sid)
            run.added = True
            self.sources.add(run)
            run.start()
        log.info("source %s added (%s)", sid, redact(cfg.input()))
        self._wake.set()
        return sid

    def remove_source(self, source_id: str, timeout: float = REMOVE_TIMEOUT_S) -> SourceInfo:
        """Stop a source, let the stage drain its frames and its analyzers' ``on_end`` events, and
        wait until the sinks have delivered every event queued so far. Returns its last status.

        Raises KeyError for an unknown id.
        """
        with self.sources.lock:
            run = self.sources.runs.get(source_id)
            if run is None or run.removing:
                raise KeyError(source_id)
            run.removing = True
        deadline = time.monotonic() + timeout
        self.sources.stop_one(run, deadline)
        # The stage drains what is left in the buffer, then calls on_end (run.ended), also while the
        # other sources deliver nothing (the batcher's on_ended); without a stage, end it here.
        while not run.ended and time.monotonic() < deadline:
            if not self.stage.alive:
                run.buffer.clear("removed")
                self.stage.batcher.remove_source(run.id)
                self.stage.end_source(run.id)
                break
            self._wake.wait(0.05)
        if not run.ended:
            log.error("source %s: stage did not drain it in %.0fs", run.id, timeout)
        info = run.info(time.time())
        self.sinks.flush(max(0.1, deadline - time.monotonic()))
        self.sources.forget(source_id)
        self.sinks.forget(source_id)
        log.info("source %s removed (%d frames staged)", run.id, run.staged)
        self._wake.set()
        return info

    def flush_sinks(self, timeout: float = 10.0) -> bool:
        """Wait until every event queued so far has been written (or failed) by its sink."""
        return self.sinks.flush(timeout)

    # -- events ------------------------------------------------------------------------------------

    def _emit(self, events: Iterable[Event] | None, frame: Frame | None) -> None:
        if not events:
            return
        origin = None if frame is None else (frame.source_id, frame.wallclock)
        for ev in events:
            self.events.append(ev)
            self.sinks.submit(ev, origin)

    def emit(self, event: Event) -> None:
        """Send an event to every sink (for programmatic producers)."""
        self.events.append(event)
        self.sinks.submit(event)

    def _on_added(self, sid: str, live: bool) -> None:
        for a in self.stage.analyzers:
            a.on_source(sid, live)

    def _on_status(self, run: SourceRun, ev: SourceStatus) -> None:
        run.state, run.detail = ev.state, ev.detail
        log.log(_status_level(ev.state, run.live), "source %s: %s", run.id, _describe(ev))
        with self._status_lock:
            # A source's last status follows every event of its frames: analyzers may still hold
            # some (a scene detector's look-ahead), so it waits until the stage has ended the source.
            terminal = ev.state in TERMINAL_STATES or bool(run.held_status)  # and what follows one
            hold = terminal and not run.flushed and bool(self.stage.analyzers)
            if hold:
                run.held_status.append(ev)
        if not hold:
            self.emit(ev)
        self._wake.set()

    def _source_flushed(self, source_id: str) -> None:
        """The stage has ended a source: its held statuses go out, after its last events."""
        run = self.sources.runs.get(source_id)
        if run is None:
            return
        with self._status_lock:
            run.flushed = True
            held, run.held_status = run.held_status, []
        for ev in held:
            self.emit(ev)

    # -- introspection -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    def latest_image(self, source_id: str) -> object | None:
        """The latest staged frame's image of a source (None before its first frame)."""
        run = self.sources.runs.get(source_id)
        frame = None if run is None else run.last_frame
        return None if frame is None else frame.image

    def healthy(self) -> bool:
        return self._state == "running" and self.stage.error is None

    def status(self) -> PipelineStatus:
        """A snapshot: per-source state, fps, last-frame age, drops by cause, reconnects, queue depths,
        the stage and its engines, per-sink backlog and counters, and the latency histograms."""
        now = time.time()
        latency = {}
        for sid, run in list(self.sources.runs.items()):
            latency[(sid, "stage")] = run.stage_latency
            sink = self.sinks.latency.get(sid)
            if sink is not None and sink.count:
                latency[(sid, "sink")] = sink
        return PipelineStatus(
            state=self._state,
            uptime_s=round(now - self._started_at, 3) if self._started_at else 0.0,
            sources=self.sources.infos(),
            stage=self.stage.info(),
            sinks=self.sinks.infos(),
            control=self.accepts_sources,
            latency=latency,
        )


TERMINAL_STATES = frozenset({"eof", "stopped", "failed"})


def _status_level(state: str, live: bool) -> int:
    if state == "connecting":
        return logging.DEBUG
    if state in ("disconnected", "stalled"):
        return logging.WARNING
    if state == "failed":  # a file's failure is raised at the end of the run: log it once, there
        return logging.WARNING if live else logging.DEBUG
    return logging.INFO


def _describe(ev: SourceStatus) -> str:
    if ev.state == "reconnecting":
        delay = "" if ev.delay_s is None else f" in {ev.delay_s:.2f}s"
        return f"reconnect attempt {ev.attempt}{delay} ({ev.detail})"
    return f"{ev.state} ({ev.detail})" if ev.detail else ev.state


def assemble(analyzers: list[Analyzer], embedder: Embedder | None) -> list[Analyzer]:
    """The pipeline's analyzers: each one's companions added (first) where nothing produces an event
    class it consumes, then each bound to its peers."""
    out = list(analyzers)
    for a in analyzers:
        produced = {cls for b in out for cls in b.produces}
        if any(cls not in produced for cls in a.consumes):
            out[:0] = [spec.implementation_target().from_config(spec, embedder) for spec in a.companions()]
    for a in out:
        a.bind(out)
    return out
