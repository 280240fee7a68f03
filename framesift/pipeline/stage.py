"""The stage: one thread that pulls batches from every source's ring buffer, runs the engines on them
(the embedder, and batched analyzers' detectors), then every analyzer on each frame, and hands the
events to the sinks. An engine that fails degrades instead of stopping the pipeline: its frames are
dropped and counted, an ErrorEvent names them, and it is retried (rebuilt, when the pipeline built
it) after an exponential backoff."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from framesift.analyzers.base import Analyzer
from framesift.config import StageConfig
from framesift.engines.base import Embedder
from framesift.engines.batcher import Batcher
from framesift.errors import ConfigError, WorkerError
from framesift.events import ErrorEvent, Event
from framesift.frame import Frame
from framesift.log import redact
from framesift.pipeline.health import EngineHealth
from framesift.pipeline.sources import SourceSet
from framesift.pipeline.status import StageInfo

log = logging.getLogger("framesift.pipeline")

STAGE_JOIN_S = 60.0
ENGINE_BACKOFF_S = (1.0, 30.0)  # first and longest wait before an engine is retried / rebuilt

#: (events, the frame that caused them or None) → the sinks
Emit = Callable[[Iterable[Event], Frame | None], None]


class Stage:
    """The batching stage and the analyzers it runs.

    ``keep_waiting()`` tells the thread to wait for new sources when none is left (a pipeline whose
    sources are added over the control API). ``lock`` is held while analyzers run, so a source's
    removal can end it between batches. The pipeline builds its :class:`SourceSet` on
    :attr:`batcher` and assigns it to :attr:`sources`.
    """

    def __init__(
        self,
        config: StageConfig,
        analyzers: list[Analyzer],
        emit: Emit,
        *,
        embedder: Embedder | None = None,
        embedder_factory: Callable[[], Embedder] | None = None,
        own_embedder: bool = False,
        engine_backoff_s: tuple[float, float] = ENGINE_BACKOFF_S,
        keep_waiting: Callable[[], bool] = lambda: False,
        on_ended: Callable[[str], None] = lambda sid: None,
    ) -> None:
        """``on_ended(source_id)``: after a source's analyzers have flushed what they held for it."""
        self._on_ended = on_ended
        # producers before their consumers: a consumer sees the events of the frames it has seen
        self.analyzers = sorted(analyzers, key=lambda a: bool(a.consumes))
        self.embedder = embedder
        self._factory = embedder_factory
        self._own_embedder = own_embedder
        self._emit = emit
        self._keep_waiting = keep_waiting
        self.needs_embedding = any(a.needs_embedding for a in analyzers)
        if self.needs_embedding and embedder is None:
            names = ", ".join(a.name for a in analyzers if a.needs_embedding)
            raise ConfigError(f"analyzers {names} need an embedder: configure engine or pass embedder=")
        # frames that come while the embedder rests after a failure are dropped (engine_error)
        self._engine = EngineHealth("embedder", engine_backoff_s)
        # batched analyzers run their own engine (a detector) in on_batch: each degrades like the embedder
        self._batched = [(a, EngineHealth(a.name, engine_backoff_s)) for a in analyzers if a.batched]
        # Batches exist to feed an engine or a batched analyzer (a detector); without one, frames
        # flow one at a time (least latency, fewest frames in flight).
        batching = self.needs_embedding or bool(self._batched)
        max_batch, max_wait = (config.max_batch, config.max_wait_ms) if batching else (1, 0.0)
        self.batcher = Batcher(
            max_batch=max_batch, max_wait_ms=max_wait, stale_after_ms=config.stale_after_ms
        )
        #: the sources whose frames the batcher pulls; set by the pipeline (they are built on its batcher)
        self.sources = SourceSet(self.batcher, lambda run, ev: None)
        self.lock = threading.Lock()
        self.error: BaseException | None = None
        self._stop = threading.Event()  # abandon queued frames (a stage that does not drain in time)
        self._thread: threading.Thread | None = None

    # -- thread ------------------------------------------------------------------------------------

    def start(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self._thread = threading.Thread(target=self._loop, name="stage", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def drain(self) -> None:
        """Shutdown step 2: wait until the stage has drained the (closed) buffers and ended every
        source; abandon what is left after ``STAGE_JOIN_S``."""
        if self._thread is None:
            return
        self._thread.join(STAGE_JOIN_S)
        if self._thread.is_alive():
            log.error("stage did not drain in %.0fs; abandoning queued frames", STAGE_JOIN_S)
            self._stop.set()
            self._thread.join(10.0)

    def close_engine(self) -> None:
        """Release the embedder the pipeline built."""
        if self._own_embedder and self.embedder is not None:
            try:
                self.embedder.close()
            except Exception as exc:
                log.warning("embedder %s failed to close: %s", self.embedder.name, exc)

    def _loop(self) -> None:
        try:
            batcher, stop = self.batcher, self._stop

            def end_sources() -> None:
                with self.lock:
                    for sid in batcher.ended():
                        self.end_source(sid)

            while True:
                batch = batcher.next_batch(stop, on_ended=end_sources)
                if batch is None:
                    end_sources()
                    if stop.is_set() or not self._keep_waiting():
                        break
                    batcher.waker.wait(0.2)  # no source left: wait for add_source
                    batcher.waker.clear()
                    continue
                now = time.time()
                runs = self.sources.runs
                for f in batch:
                    run = runs.get(f.source_id)
                    if run is None:
                        continue
                    run.staged += 1
                    run.last_index = f.index
                    run.last_frame = f
                    run.stage_latency.observe(now - f.wallclock)
                with self.lock:
                    if self.analyzers:
                        self._analyze(batch)
                    for sid in batcher.ended():
                        self.end_source(sid)
            end_sources()
        except BaseException as exc:
            log.error("stage failed: %s: %s", type(exc).__name__, exc)
            self.error = exc
            self._on_failure()

    def end_source(self, sid: str) -> None:
        """A source ended (its buffer drained): the analyzers flush what they hold for it."""
        run = self.sources.runs.get(sid)
        if run is None or run.ended:
            return
        run.ended = True
        for a in self.analyzers:
            self._emit(self._routed(a, a.on_end(sid)), None)
        self._on_ended(sid)

    # -- analyzers ---------------------------------------------------------------------------------

    def _analyze(self, batch: list[Frame]) -> None:
        # batched analyzers first: the scene signal's 32x18 grids then serve the pixel embedder too
        resting = {id(a) for a, health in self._batched if not self._run_batched(a, health, batch)}
        embeddings: list[Any] | None = None
        if self.needs_embedding:
            embeddings = self._embed_wanted(batch)
            if embeddings is None:
                return
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
                self._emit(self._routed(a, events), frame)

    def _routed(self, producer: Analyzer, events: Iterable[Event] | None) -> list[Event]:
        """``events`` plus what the analyzers that consume them answer (depth first, in order)."""
        out: list[Event] = []
        for ev in events or ():
            out.append(ev)
            for a in self.analyzers:
                if a is not producer and a.consumes and isinstance(ev, a.consumes):
                    try:
                        answer = a.on_event(ev)
                    except Exception as exc:
                        raise WorkerError(
                            f"analyzer {a.name} failed on a {ev.type} event of source {ev.source}: "
                            f"{type(exc).__name__}: {exc}",
                            worker=f"analyzer:{a.name}",
                        ) from exc
                    out += self._routed(a, answer)
        return out

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
                f"analyzer {a.name} failed on a batch of {len(batch)} frames ({describe_batch(batch)}): "
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

    # -- the embedder and its degradation ----------------------------------------------------------

    def _embed_wanted(self, batch: list[Frame]) -> list[Any] | None:
        """Per frame of ``batch``, its embedding if an analyzer wants it, else None; None when the
        engine is down (see :meth:`_embed`)."""
        users = [a for a in self.analyzers if a.needs_embedding]
        # a list, not a generator: every analyzer is asked about every frame, in order
        wanted = [i for i, f in enumerate(batch) if any([a.wants_embedding(f) for a in users])]
        out: list[Any] = [None] * len(batch)
        if not wanted:
            return out
        vecs = self._embed(batch if len(wanted) == len(batch) else [batch[i] for i in wanted])
        if vecs is None:
            return None
        for i, v in zip(wanted, vecs, strict=True):
            out[i] = v
        return out

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
            log.info("engine %s works again", self.embedder.name)
        return out

    def _engine_failed(self, batch: list[Frame], message: str) -> None:
        delay = self._engine.failed()
        log.error(
            "engine %s failed (%d in a row): %s; dropping frames, retrying in %.1fs",
            self.embedder.name if self.embedder is not None else "embedder",
            self._engine.failures,
            redact(message),
            delay,
        )
        self._drop_engine(batch, message)

    def _rebuild_embedder(self) -> bool:
        """After the backoff: rebuild an embedder the pipeline built, else retry the given one."""
        if self._factory is None or not self._own_embedder:
            return self.embedder is not None
        old, self.embedder = self.embedder, None
        if old is not None:
            try:
                old.close()
            except Exception as exc:
                log.debug("closing the failed embedder: %s", exc)
        try:
            self.embedder = self._factory()
        except Exception as exc:
            self._engine_failed([], f"rebuild failed: {type(exc).__name__}: {exc}")
            return False
        if old is not None:
            for a in self.analyzers:  # analyzers that keep the embedder (text prompts) get the new one
                a.rebind(old, self.embedder)
        log.info("engine rebuilt: %s", self.embedder.name)
        return True

    def _drop_engine(self, batch: list[Frame], message: str | None) -> None:
        runs = self.sources.runs
        for sid, n in Counter(f.source_id for f in batch).items():
            run = runs.get(sid)
            if run is not None:
                run.engine_drops += n
        if message is not None:
            self._report_dropped(batch, "engine", message)

    def _report_dropped(self, batch: list[Frame], stage: str, message: str) -> None:
        """One ErrorEvent per source of ``batch`` (``count``: its frames), or one for the pipeline."""
        per = Counter(f.source_id for f in batch)
        events = [
            ErrorEvent(source=sid, stage=stage, message=redact(message), count=per.get(sid, 0))
            for sid in per or {"pipeline": 0}
        ]
        self._emit(events, None)

    def info(self) -> StageInfo:
        return StageInfo(
            batches=self.batcher.batches,
            frames=self.batcher.frames,
            analyzers=[a.name for a in self.analyzers],
            error=None if self.error is None else redact(str(self.error)),
            engine=self._engine.info(self.embedder.name if self.embedder is not None else None),
            batched_analyzers=[health.info(health.name) for _, health in self._batched],
        )


def describe_batch(batch: list[Frame]) -> str:
    """``source cam frames 3-6, source door frame 9``: which frames of which sources a batch holds."""
    spans: dict[str, tuple[int, int]] = {}
    for f in batch:
        lo, hi = spans.get(f.source_id, (f.index, f.index))
        spans[f.source_id] = (min(lo, f.index), max(hi, f.index))
    return ", ".join(
        f"source {sid} frame {lo}" if lo == hi else f"source {sid} frames {lo}-{hi}"
        for sid, (lo, hi) in spans.items()
    )
