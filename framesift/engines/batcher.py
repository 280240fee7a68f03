"""The batching stage's frame puller: one per engine, fair across every source's ring buffer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from framesift.frame import Frame
from framesift.stream.ringbuffer import BufferClosed, RingBuffer


@dataclass
class _Slot:
    source_id: str
    buffer: RingBuffer[Frame]
    live: bool


class Batcher:
    """Pulls frames from many ring buffers into batches.

    * fair: sources are visited round-robin, one frame each per sweep, and the sweep starts one
      source further on every batch, so no source starves another;
    * a batch is released when it holds ``max_batch`` frames, or when its first frame has waited
      ``max_wait_ms`` (a slow source never holds back frames that are ready);
    * live frames older than ``stale_after_ms`` (now − ``frame.wallclock``) are dropped and counted
      on their own buffer as ``stale``;
    * frames of one source keep their order.

    Every buffer must be created with ``waker=batcher.waker``; the batcher sleeps on it instead of
    polling. :meth:`ended` returns the sources whose buffers were closed and fully drained.
    """

    def __init__(self, *, max_batch: int, max_wait_ms: float, stale_after_ms: float | None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self.stale_after_s = None if stale_after_ms is None else stale_after_ms / 1000.0
        self.waker = threading.Event()
        self._lock = threading.Lock()
        self._slots: list[_Slot] = []
        self._rr = 0
        self._ended: list[str] = []
        self.batches = 0
        self.frames = 0

    def add_source(self, source_id: str, buffer: RingBuffer[Frame], live: bool) -> None:
        """Start pulling from ``buffer`` (created with ``waker=self.waker``)."""
        with self._lock:
            if any(s.source_id == source_id for s in self._slots):
                raise ValueError(f"source {source_id!r} is already added")
            self._slots.append(_Slot(source_id, buffer, live))
        self.waker.set()

    def remove_source(self, source_id: str) -> None:
        """Stop pulling from a source (what is left in its buffer stays there)."""
        with self._lock:
            self._slots = [s for s in self._slots if s.source_id != source_id]
        self.waker.set()

    @property
    def source_ids(self) -> list[str]:
        with self._lock:
            return [s.source_id for s in self._slots]

    def _has_ended(self) -> bool:
        with self._lock:
            return bool(self._ended)

    def ended(self) -> list[str]:
        """Sources whose buffers were closed and drained since the last call (in that order)."""
        with self._lock:
            out, self._ended = self._ended, []
            return out

    def _sweep(self, batch: list[Frame], now: float) -> bool:
        """Take frames round-robin until the batch is full or every buffer is empty.

        Returns False when no source is left (all closed and drained).
        """
        with self._lock:
            slots = list(self._slots)
            start = self._rr % len(slots) if slots else 0
        if not slots:
            return False
        order = slots[start:] + slots[:start]
        finished: list[_Slot] = []
        active = list(order)
        stale = self.stale_after_s
        while active and len(batch) < self.max_batch:
            still: list[_Slot] = []
            for slot in active:
                if len(batch) >= self.max_batch:
                    still.append(slot)
                    continue
                try:
                    frame = slot.buffer.get_nowait()
                except BufferClosed:
                    finished.append(slot)
                    continue
                if frame is None:
                    continue
                if slot.live and stale is not None and now - frame.wallclock > stale:
                    slot.buffer.count_drop("stale")
                    still.append(slot)  # there may be fresher frames behind it
                    continue
                batch.append(frame)
                still.append(slot)
            active = still
        with self._lock:
            if finished:
                gone = {id(s) for s in finished}
                self._slots = [s for s in self._slots if id(s) not in gone]
                self._ended.extend(s.source_id for s in finished)
            self._rr = (start + 1) % max(1, len(self._slots))
            return bool(self._slots)

    def next_batch(
        self, stop: threading.Event, on_ended: Callable[[], None] | None = None
    ) -> list[Frame] | None:
        """The next batch; None once every buffer is closed and drained, or ``stop`` is set.

        ``on_ended`` is called (on this thread) when a source ended while no frame is waiting, so
        the caller can read :meth:`ended` at once instead of when the other sources next deliver;
        sources that end with frames in the batch are reported after it, as before.
        """
        batch: list[Frame] = []
        first_at: float | None = None
        while not stop.is_set():
            self.waker.clear()
            alive = self._sweep(batch, time.time())
            if on_ended is not None and not batch and alive and self._has_ended():
                on_ended()
            now = time.monotonic()
            if batch and first_at is None:
                first_at = now
            if first_at is not None and (
                len(batch) >= self.max_batch or not alive or now - first_at >= self.max_wait_s
            ):
                break
            if not alive:
                return None
            timeout = 0.5 if first_at is None else max(0.0, first_at + self.max_wait_s - now)
            if timeout > 0:
                self.waker.wait(timeout)
        else:
            return None
        self.batches += 1
        self.frames += len(batch)
        return batch
