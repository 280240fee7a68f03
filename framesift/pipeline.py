"""The pipeline: sources → capture threads → ring buffers → stage (batcher, engine, analyzers) → sinks.

It owns every thread, surfaces every worker's failure in the caller with the source or sink named,
and shuts down in order: capture stops → the stage drains the buffers → analyzers' ``on_end`` →
sinks drain and close → metrics server and progress stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from framesift.analyzers.base import Analyzer
from framesift.config import PipelineConfig, SourceConfig
from framesift.engines.base import Embedder
from framesift.engines.batcher import Batcher
from framesift.engines.health import EngineHealth
from framesift.errors import ConfigError, FramesiftError, SourceError, WorkerError
from framesift.events import ErrorEvent, Event, SourceStatus
from framesift.frame import Frame
from framesift.log import redact, register_url_secrets
from framesift.metrics import LatencyHistogram, MetricsServer, new_registry
from framesift.sinks.base import Sink, SinkWorker
from framesift.stream.base import Source
from framesift.stream.ringbuffer import RingBuffer

if TYPE_CHECKING:
    from framesift.progress import Progress

log = logging.getLogger("framesift.pipeline")

__all__ = ["Pipeline"]

CAPTURE_JOIN_S = 10.0
STAGE_JOIN_S = 60.0
SINK_DRAIN_S = 10.0
REMOVE_TIMEOUT_S = 30.0
ENGINE_BACKOFF_S = (1.0, 30.0)  # first and longest wait before an engine is retried / rebuilt
_ORIGINS_MAX = 4096


_MALLOC_TUNED = False


def tune_malloc() -> bool:
    """Keep freed frame memory in the process (glibc only; idempotent; FRAMESIFT_MALLOC_TUNING=0 opts out).

    Decoded frames are large (6 MB at 1080p) and live a little while in ring buffers and batches.
    glibc's defaults give such blocks back to the OS as soon as they are freed (mmap, heap trim),
    so every new frame page-faults its memory in again: measured, that costs a third of the decode
    throughput. Raising the mmap and trim thresholds makes freed frames' memory reusable; the
    process then keeps its peak (bounded by the buffer capacities) instead of returning it.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("FRAMESIFT_MALLOC_TUNING", "1") == "0":
        return _MALLOC_TUNED
    _MALLOC_TUNED = True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
        ok = libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024) == 1 and ok
    except (OSError, AttributeError):
        return False
    return ok


class _Rate:
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


@dataclass(eq=False)
class _SourceRun:
    """Everything the pipeline keeps per source."""

    id: str
    cfg: SourceConfig | None
    source: Source
    buffer: RingBuffer[Frame]
    live: bool
    worker: Any = None  # framesift.stream.capture.CaptureWorker
    state: str = "new"
    detail: str = ""
    staged: int = 0
    engine_drops: int = 0
    removing: bool = False
    last_index: int = -1
    ended: bool = False
    started: bool = False
    stage_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    sink_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    rate: _Rate = field(default_factory=_Rate)


class _TimedSink(Sink):
    """Wraps a sink to measure capture→sink latency for events caused by a frame."""

    def __init__(self, inner: Sink, pipeline: Pipeline) -> None:
        self.inner = inner
        self.name = inner.name
        self._pipeline = pipeline

    def open(self) -> None:
        self.inner.open()

    def write(self, event: Event) -> None:
        try:
            self.inner.write(event)
        finally:
            self._pipeline._sink_done(self.name)
        self._pipeline._observe_sink(event)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


class Pipeline:
    """Runs a :class:`PipelineConfig`; programmatic embedder, analyzers and sinks may be added.

    Use :meth:`run` (start, wait, stop; Ctrl-C / SIGTERM drain) or the context manager::

        with Pipeline(cfg, sinks=[MySink()]) as p:
            p.join()
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        embedder: Embedder | None = None,
        analyzers: list[Analyzer] | None = None,
        sinks: list[Sink] | None = None,
        progress: bool = False,
        status_interval_s: float = 10.0,
        embedder_factory: Callable[[], Embedder] | None = None,
        engine_backoff_s: tuple[float, float] = ENGINE_BACKOFF_S,
    ) -> None:
        self.config = config
        self._own_embedder = False
        engine_cfg = getattr(config, "engine", None)
        if (
            embedder is None
            and embedder_factory is None
            and engine_cfg is not None
            and getattr(config, "analyzers", None)
        ):
            from framesift.engines.factory import build_embedder

            def embedder_factory() -> Embedder:
                return build_embedder(engine_cfg)

        self._embedder_factory = embedder_factory
        if embedder is None and embedder_factory is not None:
            embedder = embedder_factory()
            self._own_embedder = True
        self.embedder = embedder
        # frames that come while the embedder rests after a failure are dropped (engine_error)
        self._engine = EngineHealth("embedder", engine_backoff_s)
        self.analyzers: list[Analyzer] = self._build_analyzers(embedder) + list(analyzers or [])
        self._extra_sinks: list[Sink] = list(sinks or [])
        self._progress_enabled = progress
        self._status_interval_s = status_interval_s
        self._needs_embedding = any(a.needs_embedding for a in self.analyzers)
        if self._needs_embedding and embedder is None:
            names = ", ".join(a.name for a in self.analyzers if a.needs_embedding)
            raise ConfigError(f"analyzers {names} need an embedder: configure engine or pass embedder=")
        # batched analyzers run their own engine (a detector) in on_batch: each degrades like the embedder
        self._batched = [(a, EngineHealth(a.name, engine_backoff_s)) for a in self.analyzers if a.batched]
        st = config.stage
        # Batches exist to feed an engine or a batched analyzer (a detector); without one, frames
        # flow one at a time (least latency, fewest frames in flight).
        batching = self._needs_embedding or bool(self._batched)
        max_batch, max_wait = (st.max_batch, st.max_wait_ms) if batching else (1, 0.0)
        self.batcher = Batcher(max_batch=max_batch, max_wait_ms=max_wait, stale_after_ms=st.stale_after_ms)
        self.sources: dict[str, _SourceRun] = {}
        self.sink_workers: list[SinkWorker] = []
        self.metrics_port: int | None = None
        self.interrupted_by: int | None = None  # signal number that requested the drain
        self._metrics: MetricsServer | None = None
        self._progress: Progress | None = None
        self._stage_thread: threading.Thread | None = None
        self._stage_stop = threading.Event()
        self._stop_requested = threading.Event()
        self._wake = threading.Event()
        self._stage_error: BaseException | None = None
        # id(event) → (weak ref to it, source, capture wallclock): capture→sink latency without
        # keeping delivered events (and the images some carry) alive.
        self._origins: dict[int, tuple[weakref.ref[Event], str, float]] = {}
        self._origins_lock = threading.Lock()
        self._state = "new"  # new → running → stopping → stopped
        self._finish_lock = threading.Lock()
        self._started_at = 0.0
        self._sources_lock = threading.RLock()  # add/remove over the control API
        self._stage_lock = threading.Lock()  # held by the stage while it runs analyzers
        self._control = bool(config.metrics.enabled and getattr(config.metrics, "control", False))
        self._accepted: dict[str, int] = {}  # sink name -> events queued (for flush barriers)
        self._sink_cond = threading.Condition()

    def _build_analyzers(self, embedder: Embedder | None) -> list[Analyzer]:
        """Analyzers named in ``config.analyzers`` (when the config has that section)."""
        out = []
        for acfg in getattr(self.config, "analyzers", None) or []:
            out.append(acfg.implementation_target().from_config(acfg, embedder))
        return out

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Build sources and sinks, then start sinks, metrics, stage and capture threads."""
        if self._state != "new":
            raise RuntimeError("a Pipeline can be started once")
        self._state = "running"
        self._started_at = time.time()
        tune_malloc()
        try:
            self._build_sources()
            self._build_sinks()
            for w in self.sink_workers:
                w.start()
            if self.config.metrics.enabled:
                from framesift.control import ControlAPI, control_token

                m = self.config.metrics
                control = None
                if self._control:
                    control = ControlAPI(self, token=control_token(m.token), host=m.host)
                self._metrics = MetricsServer(
                    new_registry(self),
                    host=m.host,
                    port=m.port,
                    healthy=self.healthy,
                    status=self.status,
                    control=control,
                )
                self.metrics_port = self._metrics.port
                self._metrics.start()
            self._stage_thread = threading.Thread(target=self._stage_loop, name="stage", daemon=True)
            self._stage_thread.start()
            for run in self.sources.values():
                run.worker.start()
                run.started = True
            if self._progress_enabled:
                from framesift.progress import Progress

                self._progress = Progress(self, interval_s=self._status_interval_s)
                self._progress.start()
        except BaseException:
            self._finish()
            raise

    def _build_sources(self) -> None:
        from framesift.stream.factory import source_id_for

        seen: dict[str, int] = {}
        for cfg in self.config.sources:
            sid = source_id_for(cfg)
            if sid in seen:
                if cfg.id is not None:
                    raise ConfigError(f"sources: id {sid!r} is used twice (ids must be unique)")
                seen[sid] += 1
                sid = f"{sid}-{seen[sid]}"
            seen.setdefault(sid, 1)
            self._add_run(self._make_run(cfg, sid))

    def _make_run(self, cfg: SourceConfig, sid: str) -> _SourceRun:
        from framesift.stream.capture import CaptureWorker
        from framesift.stream.factory import build_source

        for attr in ("url", "path", "device"):  # a camera password is masked wherever it shows up
            value = getattr(cfg, attr, None)
            if isinstance(value, str) and "://" in value:
                register_url_secrets(value)
        source = build_source(cfg, source_id=sid)
        live = source.live
        on_full = cfg.buffer.on_full or ("drop_oldest" if live else "block")
        buffer: RingBuffer[Frame] = RingBuffer(
            cfg.buffer.capacity, on_full, name=sid, waker=self.batcher.waker
        )
        run = _SourceRun(sid, cfg, source, buffer, live)
        run.worker = CaptureWorker(
            source,
            buffer,
            on_status=self._make_on_status(run),
            reconnect=getattr(cfg, "reconnect", None) if live else None,
            watchdog_s=getattr(cfg, "watchdog_s", None) if live else None,
        )
        return run

    def _add_run(self, run: _SourceRun) -> None:
        with self._sources_lock:
            self.sources = {**self.sources, run.id: run}  # copy-on-write: readers never see a resize
        self.batcher.add_source(run.id, run.buffer, run.live)

    # -- live control ------------------------------------------------------------------------------

    def add_source(self, cfg: SourceConfig) -> str:
        """Start a new source in the running pipeline; returns its id. The others are not touched.

        Raises ConfigError when its id is taken (or the pipeline is not running), SourceError when
        it cannot be built (e.g. an unavailable decoder); a source that cannot connect is added and
        reports its state as usual.
        """
        from framesift.stream.factory import source_id_for

        with self._sources_lock:
            if self._state != "running" or self._stop_requested.is_set():
                raise ConfigError(f"pipeline is {self._state}: sources can be added only while it runs")
            sid = source_id_for(cfg)
            if sid in self.sources:
                raise ConfigError(f"source id {sid!r} is already in use (choose another id)")
            run = self._make_run(cfg, sid)
            self._add_run(run)
            run.worker.start()
            run.started = True
        where = getattr(cfg, "url", None) or getattr(cfg, "path", None) or getattr(cfg, "device", "")
        log.info("source %s added (%s)", sid, redact(str(where)))
        self._wake.set()
        return sid

    def remove_source(self, source_id: str, timeout: float = REMOVE_TIMEOUT_S) -> dict[str, Any]:
        """Stop a source, let the stage drain its frames and its analyzers' ``on_end`` events, and
        wait until the sinks have delivered every event queued so far. Returns its last status.

        Raises KeyError for an unknown id.
        """
        with self._sources_lock:
            run = self.sources.get(source_id)
            if run is None:
                raise KeyError(source_id)
            if run.removing:
                raise KeyError(source_id)
            run.removing = True
        deadline = time.monotonic() + timeout
        if run.started:
            run.worker.stop()
            if not run.worker.join(max(0.1, deadline - time.monotonic())):
                log.error("capture thread of source %s did not stop in %.0fs", run.id, timeout)
                run.buffer.clear("removed")
        run.buffer.close()
        # The stage drains what is left in the buffer, then calls on_end (run.ended), also while the
        # other sources deliver nothing (the batcher's on_ended); without a stage, end it here.
        while not run.ended and time.monotonic() < deadline:
            stage = self._stage_thread
            if stage is None or not stage.is_alive():
                run.buffer.clear("removed")
                self.batcher.remove_source(run.id)
                self._source_ended(run.id)
                break
            self._wake.wait(0.05)
        if not run.ended:
            log.error("source %s: stage did not drain it in %.0fs", run.id, timeout)
        info = self._source_info(run, time.time())
        self.flush_sinks(max(0.1, deadline - time.monotonic()))
        with self._sources_lock:
            rest = dict(self.sources)
            rest.pop(source_id, None)
            self.sources = rest
        log.info("source %s removed (%d frames staged)", run.id, run.staged)
        self._wake.set()
        return info

    def flush_sinks(self, timeout: float = SINK_DRAIN_S) -> bool:
        """Wait until every event queued so far has been written (or failed) by its sink."""
        with self._sink_cond:
            target = dict(self._accepted)
        deadline = time.monotonic() + timeout
        workers = {w.name: w for w in self.sink_workers}
        with self._sink_cond:
            while True:
                behind = [
                    n
                    for n, k in target.items()
                    if n in workers and workers[n].error is None and _finished(workers[n]) < k
                ]
                if not behind:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("sinks %s did not deliver their backlog in %.1fs", ", ".join(behind), timeout)
                    return False
                self._sink_cond.wait(min(0.1, left))

    def _sink_done(self, name: str) -> None:
        with self._sink_cond:
            self._sink_cond.notify_all()

    def _submit(self, event: Event) -> None:
        for w in self.sink_workers:
            if w.submit(event):
                with self._sink_cond:
                    self._accepted[w.name] = self._accepted.get(w.name, 0) + 1

    def _build_sinks(self) -> None:
        names: set[str] = set()

        def unique(name: str) -> str:
            out, n = name, 1
            while out in names:
                n += 1
                out = f"{name}-{n}"
            names.add(out)
            return out

        for cfg in self.config.sinks:
            sink = cfg.implementation_target().from_config(cfg)
            sink.name = unique(cfg.name or sink.name or cfg.type_name())
            self.sink_workers.append(
                SinkWorker(
                    _TimedSink(sink, self),
                    queue_size=cfg.queue_size,
                    event_types=set(cfg.events) if cfg.events is not None else None,
                    max_retries=cfg.max_retries,
                    retry_initial_s=cfg.retry_initial_s,
                    retry_max_s=cfg.retry_max_s,
                )
            )
        for sink in self._extra_sinks:
            sink.name = unique(getattr(sink, "name", None) or type(sink).__name__.lower())
            self.sink_workers.append(SinkWorker(_TimedSink(sink, self)))

    def stop(self) -> None:
        """Drain and shut down in order; idempotent. Does not raise worker failures (``join`` does)."""
        self._stop_requested.set()
        self._finish()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every source has ended (or a stop was requested), flush everything, then raise
        the first worker failure. Returns False if ``timeout`` passed first (nothing is stopped)."""
        if self._state == "new":
            raise RuntimeError("Pipeline.join() before start()")
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state == "running":
            if self._stop_requested.is_set() or self._stage_error is not None:
                break
            runs = list(self.sources.values())
            # With the control API on, an emptied pipeline waits for new sources.
            if (runs or not self._control) and all(r.worker.done for r in runs if r.started):
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
        """start + join + stop; from the main thread, SIGINT/SIGTERM trigger a graceful drain
        (a second SIGINT interrupts at once). :attr:`interrupted_by` tells which signal stopped it."""
        handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            self.start()
            self.join()
        finally:
            try:
                self.stop()
            finally:
                for signum, h in handlers.items():
                    signal.signal(signum, h)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("%s received: draining (send SIGINT again to abort)", signal.Signals(signum).name)
        if self.interrupted_by is None:
            self.interrupted_by = signum
        self._stop_requested.set()
        self._wake.set()

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
                self._shutdown()
            finally:
                self._state = "stopped"

    def _shutdown(self) -> None:
        runs = list(self.sources.values())
        for run in runs:  # 1. capture stops (interrupts blocking reads)
            if run.started and not run.worker.done:
                run.worker.stop()
        if self._stage_thread is None or not self._stage_thread.is_alive():
            for run in runs:  # nobody drains: unblock producers waiting on a full buffer
                run.buffer.close()
        for run in runs:
            if run.started and not run.worker.join(CAPTURE_JOIN_S):
                log.error("capture thread of source %s did not stop in %.0fs", run.id, CAPTURE_JOIN_S)
                run.buffer.close()
                run.buffer.clear("shutdown")
                run.worker.join(CAPTURE_JOIN_S)
            run.buffer.close()
        if self._stage_thread is not None:  # 2. the stage drains the buffers, analyzers' on_end
            self._stage_thread.join(STAGE_JOIN_S)
            if self._stage_thread.is_alive():
                log.error("stage did not drain in %.0fs; abandoning queued frames", STAGE_JOIN_S)
                self._stage_stop.set()
                self._stage_thread.join(10.0)
        if self._own_embedder and self.embedder is not None:
            try:
                self.embedder.close()
            except Exception as exc:
                log.warning("embedder %s failed to close: %s", self.embedder.name, exc)
        for w in self.sink_workers:  # 3. sinks deliver what is queued and close
            w.stop(drain=True, timeout=SINK_DRAIN_S)
        for w in self.sink_workers:
            counts = ", ".join(f"{k} {v}" for k, v in sorted(w.counts.items())) or "nothing"
            log.info("sink %s: %d events queued; %s", w.name, self._accepted.get(w.name, 0), counts)
        if self._progress is not None:
            self._progress.stop()
        if self._metrics is not None:
            self._metrics.stop()

    def raise_errors(self) -> None:
        """Raise the first failure: the stage, then sources (a SourceError as itself), then sinks."""
        if self._stage_error is not None:
            exc = self._stage_error
            if isinstance(exc, FramesiftError) and not isinstance(exc, WorkerError):
                raise WorkerError(f"stage: {exc}", worker="stage") from exc
            if isinstance(exc, WorkerError):
                raise exc
            raise WorkerError(f"stage failed: {type(exc).__name__}: {exc}", worker="stage") from exc
        for run in self.sources.values():
            err = getattr(run.worker, "error", None) if run.worker is not None else None
            if err is None:
                continue
            if isinstance(err, SourceError):
                if err.source is None:
                    err.source = run.id
                raise err
            raise WorkerError(
                f"source {run.id}: {type(err).__name__}: {redact(str(err))}", worker=f"source:{run.id}"
            ) from err
        for w in self.sink_workers:
            if w.error is not None:
                raise WorkerError(
                    f"sink {w.name}: {type(w.error).__name__}: {w.error}", worker=f"sink:{w.name}"
                ) from w.error

    # -- stage -------------------------------------------------------------------------------------

    def _keep_stage(self) -> bool:
        """Whether the stage waits for new sources when none is left (control API on, running)."""
        return self._control and self._state == "running" and not self._stop_requested.is_set()

    def _stage_loop(self) -> None:
        try:
            batcher, stop = self.batcher, self._stage_stop

            def end_sources() -> None:
                with self._stage_lock:
                    for sid in batcher.ended():
                        self._source_ended(sid)

            while True:
                batch = batcher.next_batch(stop, on_ended=end_sources)
                if batch is None:
                    end_sources()
                    if stop.is_set() or not self._keep_stage():
                        break
                    batcher.waker.wait(0.2)  # no source left: wait for add_source
                    batcher.waker.clear()
                    continue
                now = time.time()
                runs = self.sources
                for f in batch:
                    run = runs.get(f.source_id)
                    if run is None:
                        continue
                    run.staged += 1
                    run.last_index = f.index
                    run.stage_latency.observe(now - f.wallclock)
                with self._stage_lock:
                    if self.analyzers:
                        self._analyze(batch)
                    for sid in batcher.ended():
                        self._source_ended(sid)
            end_sources()
        except BaseException as exc:
            log.error("stage failed: %s: %s", type(exc).__name__, exc)
            self._stage_error = exc
            self._stop_requested.set()
            self._wake.set()

    def _analyze(self, batch: list[Frame]) -> None:
        embeddings = None
        if self._needs_embedding:
            embeddings = self._embed(batch)
            if embeddings is None:
                return
        resting = {id(a) for a, health in self._batched if not self._run_batched(a, health, batch)}
        for i, frame in enumerate(batch):
            for a in self.analyzers:
                if id(a) in resting:
                    continue
                emb = embeddings[i] if embeddings is not None and a.needs_embedding else None
                try:
                    events = a.on_frame(frame, emb)
                except Exception as exc:
                    raise WorkerError(
                        f"analyzer {a.name} failed on source {frame.source_id} frame {frame.index}: "
                        f"{type(exc).__name__}: {exc}",
                        worker=f"analyzer:{a.name}",
                    ) from exc
                self._emit(events, frame)

    # -- graceful degradation of the engines ---------------------------------------------------------

    def _run_batched(self, a: Analyzer, health: EngineHealth, batch: list[Frame]) -> bool:
        """``a.on_batch(batch)``; False when its engine failed or rests after a failure: then the
        analyzer skips this batch (its frames still reach the other analyzers), an ErrorEvent names
        the analyzer and the frames, and it is tried again after the backoff."""
        if health.resting():
            return False
        try:
            a.on_batch(batch)
        except Exception as exc:  # its engine failed (CUDA error, runtime crash...): degrade
            delay = health.failed()
            message = (
                f"analyzer {a.name} failed on a batch of {len(batch)} frames ({_describe_batch(batch)}): "
                f"{type(exc).__name__}: {exc}"
            )
            log.error(
                "%s (%d in a row); it skips frames, retrying in %.1fs",
                redact(message),
                health.failures,
                delay,
            )
            self._report_dropped(batch, f"analyzer:{a.name}", message)
            return False
        if health.succeeded():
            log.info("analyzer %s works again", a.name)
        return True

    def _embed(self, batch: list[Frame]) -> Any:
        """Embeddings of ``batch``, or None when the engine is down: the frames are then dropped and
        counted (``engine_error``), an ErrorEvent goes to the sinks, and the engine is retried (rebuilt
        when the pipeline built it) after an exponential backoff, so a broken engine never spins."""
        if self._engine.resting():
            self._drop_engine(batch, None)
            return None
        if (self._engine.broken or self.embedder is None) and not self._rebuild_embedder():
            self._drop_engine(batch, None)
            return None
        assert self.embedder is not None
        try:
            out = self.embedder.embed_images(batch)
        except Exception as exc:  # an engine failure (CUDA error, runtime crash...): degrade
            self._engine_failed(batch, f"{type(exc).__name__}: {exc}")
            return None
        if self._engine.succeeded():
            log.info("engine %s works again", getattr(self.embedder, "name", "embedder"))
        return out

    def _engine_failed(self, batch: list[Frame], message: str) -> None:
        delay = self._engine.failed()
        log.error(
            "engine %s failed (%d in a row): %s; dropping frames, retrying in %.1fs",
            getattr(self.embedder, "name", "embedder"),
            self._engine.failures,
            redact(message),
            delay,
        )
        self._drop_engine(batch, message)

    def _rebuild_embedder(self) -> bool:
        """After the backoff: rebuild an embedder the pipeline built, else retry the given one."""
        if self._embedder_factory is None or not self._own_embedder:
            return self.embedder is not None
        old, self.embedder = self.embedder, None
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                log.debug("closing the failed embedder: %s", exc)
        try:
            self.embedder = self._embedder_factory()
        except Exception as exc:
            self._engine_failed([], f"rebuild failed: {type(exc).__name__}: {exc}")
            return False
        for a in self.analyzers:  # analyzers that keep the embedder (text prompts) get the new one
            if getattr(a, "embedder", None) is old and old is not None:
                with contextlib.suppress(AttributeError):
                    a.embedder = self.embedder  # type: ignore[attr-defined]
        log.info("engine rebuilt: %s", getattr(self.embedder, "name", "embedder"))
        return True

    def _drop_engine(self, batch: list[Frame], message: str | None) -> None:
        runs = self.sources
        for sid, n in Counter(f.source_id for f in batch).items():
            run = runs.get(sid)
            if run is not None:
                run.engine_drops += n
        if message is not None:
            self._report_dropped(batch, "engine", message)

    def _report_dropped(self, batch: list[Frame], stage: str, message: str) -> None:
        """One ErrorEvent per source of ``batch`` (``count``: its frames), or one for the pipeline."""
        per = Counter(f.source_id for f in batch)
        for sid in per or {"pipeline": 0}:
            self._submit(ErrorEvent(source=sid, stage=stage, message=redact(message), count=per.get(sid, 0)))

    def _source_ended(self, sid: str) -> None:
        run = self.sources.get(sid)
        if run is None or run.ended:
            return
        run.ended = True
        for a in self.analyzers:
            self._emit(a.on_end(sid), None)

    def _emit(self, events: Iterable[Event] | None, frame: Frame | None) -> None:
        if not events:
            return
        for ev in events:
            if frame is not None:
                with self._origins_lock:
                    self._origins[id(ev)] = (weakref.ref(ev), frame.source_id, frame.wallclock)
                    if len(self._origins) > _ORIGINS_MAX:
                        del self._origins[next(iter(self._origins))]
            self._submit(ev)

    def emit(self, event: Event) -> None:
        """Send an event to every sink (for programmatic producers)."""
        self._emit((event,), None)

    def _observe_sink(self, event: Event) -> None:
        with self._origins_lock:
            origin = self._origins.get(id(event))
            if origin is None or origin[0]() is not event:
                return
            run = self.sources.get(origin[1])
            if run is not None:
                run.sink_latency.observe(time.time() - origin[2])

    # -- callbacks ---------------------------------------------------------------------------------

    def _make_on_status(self, run: _SourceRun) -> Any:
        def on_status(ev: SourceStatus) -> None:
            run.state, run.detail = ev.state, ev.detail
            log.log(_status_level(ev.state, run.live), "source %s: %s", run.id, _describe(ev))
            self._submit(ev)
            self._wake.set()

        return on_status

    # -- introspection -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state == "running"

    def healthy(self) -> bool:
        return self._state == "running" and self._stage_error is None

    def _source_info(self, run: _SourceRun, now: float) -> dict[str, Any]:
        st = run.source.stats
        last = st.last_frame_wallclock
        drops: dict[str, int] = dict(run.buffer.drops)
        if st.decode_errors:
            drops["decode_error"] = st.decode_errors
        if run.engine_drops:
            drops["engine_error"] = run.engine_drops
        cfg = run.cfg
        return {
            "type": getattr(cfg, "type", "custom"),
            "live": run.live,
            "state": run.state if run.state != "new" else st.state,
            "detail": redact(run.detail),
            "fps": round(self._fps(run), 3),
            "frames_decoded": st.frames_decoded,
            "frames_skipped": st.frames_skipped,
            "frames_staged": run.staged,
            "last_index": run.last_index,
            "last_frame_age_s": None if last is None else round(max(0.0, now - last), 3),
            "reconnects": st.reconnects,
            "queue_depth": len(run.buffer),
            "capacity": run.buffer.capacity,
            "on_full": run.buffer.on_full,
            "drops": drops,
            "ended": run.ended,
        }

    @staticmethod
    def _fps(run: _SourceRun) -> float:
        measured = run.rate.sample(run.source.stats.frames_decoded)
        if run.worker is None or run.worker.done or run.state in ("eof", "failed", "stopped"):
            return 0.0
        return measured or float(run.source.stats.fps or 0.0)

    def status(self) -> dict[str, Any]:
        """A JSON-ready snapshot: per-source state, fps, last-frame age, drops by cause, reconnects,
        queue depths, and per-sink backlog and counters."""
        now = time.time()
        return {
            "state": self._state,
            "uptime_s": round(now - self._started_at, 3) if self._started_at else 0.0,
            "sources": {sid: self._source_info(run, now) for sid, run in list(self.sources.items())},
            "stage": {
                "batches": self.batcher.batches,
                "frames": self.batcher.frames,
                "analyzers": [a.name for a in self.analyzers],
                "error": None if self._stage_error is None else redact(str(self._stage_error)),
                "engine": self._engine.status() | {"name": getattr(self.embedder, "name", None)},
                "batched_analyzers": [health.status() for _, health in self._batched],
            },
            "sinks": {w.name: self._sink_info(w) for w in self.sink_workers},
            "control": self._control,
        }

    @staticmethod
    def _sink_info(w: SinkWorker) -> dict[str, Any]:
        inner = getattr(w.sink, "inner", w.sink)
        stats = getattr(inner, "stats", None)
        return {
            "backlog": w.backlog,
            "counts": dict(w.counts),
            "stats": dict(stats) if isinstance(stats, dict) else {},
            "last_error": None if w.last_error is None else redact(w.last_error),
        }

    def snapshot(self) -> dict[str, Any]:
        """What the metrics collector reads: :meth:`status` plus drops keyed by (stage, cause) and
        the latency histograms keyed by (source, stage)."""
        snap = self.status()
        latency: dict[tuple[str, str], LatencyHistogram] = {}
        runs = self.sources
        for sid, info in snap["sources"].items():
            info["drops"] = {(_drop_stage(cause), cause): n for cause, n in info["drops"].items()}
            run = runs.get(sid)
            if run is None:
                continue
            latency[(sid, "stage")] = run.stage_latency
            if run.sink_latency.count:
                latency[(sid, "sink")] = run.sink_latency
        snap["latency"] = latency
        return snap


def _finished(w: SinkWorker) -> int:
    """Events a sink worker has finished with: written, failed, or dropped while stopping."""
    c = w.counts
    return int(c.get("written", 0) + c.get("failed", 0) + c.get("dropped:shutdown", 0))


def _describe_batch(batch: list[Frame]) -> str:
    """``source cam frames 3-6, source door frame 9``: which frames of which sources a batch holds."""
    spans: dict[str, tuple[int, int]] = {}
    for f in batch:
        lo, hi = spans.get(f.source_id, (f.index, f.index))
        spans[f.source_id] = (min(lo, f.index), max(hi, f.index))
    return ", ".join(
        f"source {sid} frame {lo}" if lo == hi else f"source {sid} frames {lo}-{hi}"
        for sid, (lo, hi) in spans.items()
    )


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


def _drop_stage(cause: str) -> str:
    if cause == "stale":
        return "batcher"
    if cause == "decode_error":
        return "decode"
    if cause == "engine_error":
        return "engine"
    return "buffer"
