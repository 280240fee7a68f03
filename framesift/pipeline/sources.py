"""Source lifecycle: each configured source with its ring buffer and capture thread, ids, adding and
removing sources while the pipeline runs, and each source's status."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from framesift.config import SourceConfig
from framesift.config.sources import LiveSourceSpec
from framesift.engines.batcher import Batcher
from framesift.errors import SourceError, SourceIdTaken, WorkerError
from framesift.events import SourceStatus
from framesift.frame import Frame
from framesift.log import redact, register_url_secrets
from framesift.pipeline.status import LatencyHistogram, Rate, SourceInfo
from framesift.stream.base import Source
from framesift.stream.capture import CaptureWorker
from framesift.stream.factory import build_source, numbered, source_id_for
from framesift.stream.ringbuffer import RingBuffer

log = logging.getLogger("framesift.pipeline")

CAPTURE_JOIN_S = 10.0


@dataclass(eq=False)
class SourceRun:
    """Everything the pipeline keeps per source."""

    id: str
    cfg: SourceConfig | None
    source: Source
    buffer: RingBuffer[Frame]
    live: bool
    worker: CaptureWorker
    state: str = "new"
    detail: str = ""
    staged: int = 0
    engine_drops: int = 0
    removing: bool = False
    last_index: int = -1
    ended: bool = False
    flushed: bool = False  # the stage has ended it and its analyzers have flushed what they held
    held_status: list[SourceStatus] = field(default_factory=list)  # terminal statuses waiting for that
    started: bool = False
    added: bool = False  # added over the control API while running
    last_frame: Frame | None = None  # the latest staged frame (one reference; for previews)
    stage_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    rate: Rate = field(default_factory=Rate)

    def start(self) -> None:
        self.worker.start()
        self.started = True

    def fps(self) -> float:
        measured = self.rate.sample(self.source.stats.frames_decoded)
        if self.worker.done or self.state in ("eof", "failed", "stopped"):
            return 0.0
        return measured or float(self.source.stats.fps or 0.0)

    def info(self, now: float) -> SourceInfo:
        st = self.source.stats
        last = st.last_frame_wallclock
        drops: dict[str, int] = dict(self.buffer.drops)
        if st.decode_errors:
            drops["decode_error"] = st.decode_errors
        if self.engine_drops:
            drops["engine_error"] = self.engine_drops
        return SourceInfo(
            type=self.cfg.type_name() if self.cfg is not None else "custom",
            live=self.live,
            state=self.state if self.state != "new" else st.state,
            detail=redact(self.detail),
            fps=round(self.fps(), 3),
            frames_decoded=st.frames_decoded,
            frames_skipped=st.frames_skipped,
            frames_staged=self.staged,
            last_index=self.last_index,
            last_frame_age_s=None if last is None else round(max(0.0, now - last), 3),
            reconnects=st.reconnects,
            queue_depth=len(self.buffer),
            capacity=self.buffer.capacity,
            on_full=self.buffer.on_full,
            drops=drops,
            ended=self.ended,
        )

    def failure(self) -> BaseException | None:
        """The capture thread's failure, as the error the pipeline raises (a SourceError as itself)."""
        err = self.worker.error
        if err is None:
            return None
        if isinstance(err, SourceError):
            if err.source is None:
                err.source = self.id
            return err
        wrapped = WorkerError(
            f"source {self.id}: {type(err).__name__}: {redact(str(err))}", worker=f"source:{self.id}"
        )
        wrapped.__cause__ = err
        return wrapped


def unique_source_ids(configs: list[SourceConfig]) -> list[str]:
    """The id of each source: configured ids must be unique, derived ones get ``-2``, ``-3``...
    suffixes; ConfigError (one line) for a configured id used twice."""
    return numbered([source_id_for(c) for c in configs], [c.id is not None for c in configs])


class SourceSet:
    """The pipeline's sources by id. ``runs`` is replaced, never resized (copy-on-write), so readers
    on other threads iterate it without a lock; ``lock`` serialises adding and removing."""

    def __init__(
        self,
        batcher: Batcher,
        on_status: Callable[[SourceRun, SourceStatus], None],
        *,
        decode_threads: int = 0,
        on_added: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.batcher = batcher
        self.decode_threads = decode_threads  # the thread plan's, for sources that set none
        self.on_status = on_status
        self.on_added = on_added
        self.runs: dict[str, SourceRun] = {}
        self.lock = threading.RLock()
        self._others_logged = False  # failure(): the other failed sources are in the log

    def build(self, configs: list[SourceConfig]) -> None:
        """One run per config, with the ids of :func:`unique_source_ids`."""
        for cfg, sid in zip(configs, unique_source_ids(configs), strict=True):
            self.add(self.make(cfg, sid))

    def make(self, cfg: SourceConfig, sid: str) -> SourceRun:
        """A source, its ring buffer (``on_full`` by default: drop oldest live, block files) and its
        capture worker, not yet started."""
        if "://" in cfg.input():  # a camera password is masked wherever it shows up
            register_url_secrets(cfg.input())
        if self.decode_threads and not cfg.threads:
            cfg = cfg.model_copy(update={"threads": self.decode_threads})
        source = build_source(cfg, source_id=sid)
        live = source.live
        on_full = cfg.buffer.on_full or ("drop_oldest" if live else "block")
        buffer: RingBuffer[Frame] = RingBuffer(
            cfg.buffer.capacity, on_full, name=sid, waker=self.batcher.waker
        )
        holder: list[SourceRun] = []
        live_cfg = cfg if isinstance(cfg, LiveSourceSpec) and live else None
        worker = CaptureWorker(
            source,
            buffer,
            on_status=lambda ev: self.on_status(holder[0], ev),
            reconnect=None if live_cfg is None else live_cfg.reconnect,
            watchdog_s=None if live_cfg is None else live_cfg.watchdog_s,
            max_frames=cfg.max_frames,
        )
        run = SourceRun(sid, cfg, source, buffer, live, worker)
        holder.append(run)
        return run

    def add(self, run: SourceRun) -> None:
        """Register ``run``; ``on_added`` (the analyzers) may refuse it with a ConfigError."""
        with self.lock:
            if run.id in self.runs:
                raise SourceIdTaken(f"source id {run.id!r} is already in use (choose another id)")
            if self.on_added is not None:
                self.on_added(run.id, run.live)
            self.runs = {**self.runs, run.id: run}
        self.batcher.add_source(run.id, run.buffer, run.live)

    def forget(self, sid: str) -> None:
        with self.lock:
            rest = dict(self.runs)
            rest.pop(sid, None)
            self.runs = rest

    def start_all(self) -> None:
        for run in self.runs.values():
            run.start()

    def all_done(self) -> bool:
        """Every started capture thread has finished."""
        return all(r.worker.done for r in self.runs.values() if r.started)

    def stop_capture(self, stage_alive: bool) -> None:
        """Shutdown step 1: stop every capture thread and wait for it; without a stage to drain the
        buffers, close them first so producers blocked on a full buffer are released."""
        runs = list(self.runs.values())
        for run in runs:
            if run.started and not run.worker.done:
                run.worker.stop()
        if not stage_alive:
            for run in runs:
                run.buffer.close()
        for run in runs:
            if run.started and not run.worker.join(CAPTURE_JOIN_S):
                log.error("capture thread of source %s did not stop in %.0fs", run.id, CAPTURE_JOIN_S)
                run.buffer.close()
                run.buffer.clear("shutdown")
                run.worker.join(CAPTURE_JOIN_S)
            run.buffer.close()

    def stop_one(self, run: SourceRun, deadline: float) -> None:
        """Stop one source's capture (its buffer is then drained by the stage)."""
        if run.started:
            run.worker.stop()
            if not run.worker.join(max(0.1, deadline - time.monotonic())):
                log.error("capture thread of source %s did not stop in time", run.id)
                run.buffer.clear("removed")
        run.buffer.close()

    def infos(self) -> dict[str, SourceInfo]:
        now = time.time()
        return {sid: run.info(now) for sid, run in list(self.runs.items())}

    def failure(self) -> BaseException | None:
        """The first failure of a configured source, if any; those of the other configured sources
        are logged (once, as errors) so that the run names every input that failed, not only the
        one it exits with. A source added while running (over the control API) that fails is
        reported there, in the log and as events; it does not fail the run."""
        errors = [e for run in self.runs.values() if not run.added and (e := run.failure()) is not None]
        if len(errors) > 1 and not self._others_logged:
            self._others_logged = True
            for err in errors[1:]:
                log.error("%s", err)
        return errors[0] if errors else None
