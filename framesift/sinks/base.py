"""The Sink contract and the worker that runs each sink on its own thread with a bounded queue.

A sink implements ``open()``, ``write(event)``, ``close()`` (and may override ``flush()``). The
pipeline never calls a sink directly: it calls :meth:`SinkWorker.submit`, which never blocks. A
failing ``write`` is retried with exponential backoff; a transient failure that outlives its
retries, or a full queue, drops the event and counts it. One broken sink never stops the others.
"""

from __future__ import annotations

import abc
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any

from framesift.errors import SinkError
from framesift.events import Event, event_classes

log = logging.getLogger("framesift.sinks")


class Sink(abc.ABC):
    """An event destination. Implementations need not be thread-safe: one worker thread calls them."""

    name: str = "sink"
    #: The sink's own counters (published, spool_backlog, ...), shown in ``/status`` and metrics.
    stats: Mapping[str, Any] = MappingProxyType({})
    #: The event types the sink writes (None: all); others are never queued for it.
    accepts: tuple[type[Event], ...] | None = None
    #: Seconds the sink gets at shutdown to deliver its backlog; None: until it is done (a sink that
    #: writes local files only, whose last write may be long, such as a per-scene split of a film).
    drain_s: float | None = 10.0

    def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (files, connections). Raise SinkError with a clear message."""

    @abc.abstractmethod
    def write(self, event: Event) -> None:
        """Deliver one event; raise SinkError (transient=True to be retried)."""

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Push buffered data out; called when the queue runs empty and before close."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release; called once, from the worker thread."""

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_STOP = object()


class SinkWorker:
    """Runs one :class:`Sink` on a daemon thread fed by a bounded queue.

    When the queue is full, ``submit`` drops the event and counts it under ``queue_full``, or with
    ``block=True`` waits for room (while the worker runs): files lose nothing, live pipelines never
    wait on a slow sink. ``stop(drain=True)`` delivers what is queued (within ``timeout``) and closes.
    Counters live in :attr:`counts` (``written``, ``failed``, ``retries``, ``dropped:<cause>``);
    ``on_done(event)`` is called on the worker thread after each event is written or given up.
    ``event_types`` (names from :data:`framesift.events.EVENT_TYPES`) and the sink's own
    :attr:`Sink.accepts` limit what is queued for it.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        queue_size: int = 1024,
        event_types: Collection[str] | None = None,
        max_retries: int = 5,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        on_error: Callable[[str, BaseException], None] | None = None,
        on_done: Callable[[Event], None] | None = None,
        block: bool = False,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._types = None if event_types is None else event_classes(event_types)
        self._accepts = sink.accepts
        self._max_retries = max_retries
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._on_error = on_error
        self._on_done = on_done
        self.block = block
        self._stop_evt = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts: Counter[str] = Counter()
        self.error: BaseException | None = None
        self.last_error: str | None = None

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        """Open the sink (in the caller, so open errors surface at start) and start the thread."""
        self.sink.open()
        self._thread = threading.Thread(target=self._run, name=f"sink:{self.name}", daemon=True)
        self._thread.start()

    def submit(self, event: Event) -> bool:
        """Queue ``event`` for delivery; False if filtered out or dropped."""
        if (self._types is not None and not isinstance(event, self._types)) or (
            self._accepts is not None and not isinstance(event, self._accepts)
        ):
            return False
        try:
            self._queue.put_nowait(event)
            return True
        except queue.Full:
            pass
        while self.block and self._thread is not None and not self._stop_evt.is_set():
            try:
                self._queue.put(event, timeout=0.1)
                return True
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self.counts["dropped:queue_full"] += 1
        return False

    def stop(self, *, drain: bool = True, timeout: float | None = 10.0) -> None:
        """Stop the worker; with ``drain`` deliver what is queued first (within ``timeout``
        seconds; None: however long it takes). Joins the thread."""
        if self._thread is None:
            return
        if not drain:
            self._stop_evt.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                late = deadline is not None and time.monotonic() > deadline
                if late or not self._thread.is_alive():
                    self._stop_evt.set()
                    break
        self._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()) + 1.0)
        if self._thread.is_alive():
            self._stop_evt.set()
            self._thread.join(5.0)
        self._thread = None

    def _deliver(self, event: Event) -> None:
        delay = self._retry_initial
        attempt = 0
        while True:
            try:
                self.sink.write(event)
                self.counts["written"] += 1
                return
            except SinkError as exc:
                self.last_error = str(exc)
                if not exc.transient or attempt >= self._max_retries or self._stop_evt.is_set():
                    self.counts["failed"] += 1
                    self.counts["dropped:write_failed"] += 1
                    log.warning("sink %s dropped a %s event: %s", self.name, event.type, exc)
                    if self._on_error:
                        self._on_error(self.name, exc)
                    return
                attempt += 1
                self.counts["retries"] += 1
                wait = min(delay, self._retry_max) * (1 + random.uniform(-0.2, 0.2))
                log.info("sink %s: %s; retry %d in %.1fs", self.name, exc, attempt, wait)
                if self._stop_evt.wait(wait):
                    self.counts["failed"] += 1
                    self.counts["dropped:shutdown"] += 1
                    return
                delay *= 2

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.5)
                except queue.Empty:
                    if self._stop_evt.is_set():  # stop() could not queue its marker (queue was full)
                        break
                    self._safe_flush()
                    continue
                if item is _STOP:
                    break
                assert isinstance(item, Event)
                try:
                    if self._stop_evt.is_set():
                        self.counts["dropped:shutdown"] += 1
                    else:
                        self._deliver(item)
                finally:
                    if self._on_done is not None:
                        self._on_done(item)
                if self._queue.empty():
                    self._safe_flush()
        except BaseException as exc:  # a bug in a sink: record it, keep the pipeline up
            self.error = exc
            self.last_error = repr(exc)
            log.exception("sink %s crashed", self.name)
            if self._on_error:
                self._on_error(self.name, exc)
        finally:
            try:
                self.sink.close()
            except Exception as exc:
                self.last_error = str(exc)
                log.warning("sink %s failed to close: %s", self.name, exc)

    def _safe_flush(self) -> None:
        try:
            self.sink.flush()
        except SinkError as exc:
            self.last_error = str(exc)
            self.counts["flush_errors"] += 1
