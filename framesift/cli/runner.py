"""Running a pipeline as the process's main job: memory tuning, the services beside it, progress,
and signals (SIGINT/SIGTERM drain; a second SIGINT aborts). Every command that runs a pipeline
goes through :func:`run_pipeline`."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any, Protocol, TextIO

from framesift.config import PipelineConfig
from framesift.pipeline.status import SourceControl
from framesift.progress import Progress
from framesift.stream.headers import total_frames

log = logging.getLogger("framesift.cli")

_MALLOC_TUNED = False


class Runnable(SourceControl, Protocol):
    """What :func:`run_pipeline` runs: a :class:`~framesift.pipeline.Pipeline`, or a fleet of them
    on a Ray cluster (:class:`~framesift.cluster.fleet.Fleet`)."""

    config: PipelineConfig

    def start(self) -> None: ...

    def join(self, timeout: float | None = None) -> bool: ...

    def request_stop(self) -> None: ...

    def stop(self) -> None: ...


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


def progress_for(pipeline: Runnable, *, interval_s: float = 10.0, stream: TextIO | None = None) -> Progress:
    """A progress display for ``pipeline``: a bar over the files' frame counts, or status lines."""
    sources = pipeline.config.sources
    files_only = all(not s.live for s in sources)
    total = total_frames(list(sources)) if files_only else None
    return Progress(pipeline.status, files_only=files_only, total=total, interval_s=interval_s, stream=stream)


def run_pipeline(pipeline: Runnable, *, progress: bool = True, status_interval_s: float = 10.0) -> int | None:
    """Start ``pipeline`` with its services, wait until its sources end or a signal asks for a drain,
    then stop it in order. Returns the signal that stopped it (SIGINT/SIGTERM), or None. Worker
    failures are raised after the drain."""
    tune_malloc()
    stopped_by: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopped_by and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not stopped_by:
            stopped_by.append(signum)
        hint = " (send SIGINT again to abort)" if signum == signal.SIGINT else ""
        log.info("%s received: draining%s", signal.Signals(signum).name, hint)
        pipeline.request_stop()

    from framesift.services import Services  # the HTTP server's modules load only when a command runs

    handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, on_signal)
    try:
        stores = [getattr(s, "path", None) for s in pipeline.config.sinks if s.type_name() == "frame_store"]
        services = Services(
            pipeline,
            pipeline.config.metrics,
            progress=progress_for(pipeline, interval_s=status_interval_s) if progress else None,
            store_dir=stores[0] if stores else None,
        )
        try:
            pipeline.start()
            services.start()
            pipeline.join()
        finally:
            try:
                pipeline.stop()
            finally:
                services.stop()
    finally:
        for signum, h in handlers.items():
            signal.signal(signum, h)
    return stopped_by[0] if stopped_by else None


def raise_failures(errors: Sequence[BaseException]) -> None:
    """Several inputs failed: each but the first is logged as an error, then the first is raised
    (its exit code is the run's), so that every broken input is named."""
    for err in errors[1:]:
        log.error("%s", err)
    if errors:
        raise errors[0]
