"""A bounded, thread-safe frame buffer with an explicit policy when full and drop counters."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Generic, TypeVar

from framesift.config.base import OnFull

T = TypeVar("T")
ON_FULL_POLICIES: tuple[str, ...] = ("drop_oldest", "drop_newest", "block")


class BufferClosed(Exception):
    """Raised by :meth:`RingBuffer.get` once the buffer is closed and empty."""


class RingBuffer(Generic[T]):
    """Bounded FIFO between one producer (a capture thread) and a consumer.

    ``on_full``: ``drop_oldest`` evicts the oldest item (live feeds: latest frames win),
    ``drop_newest`` discards the incoming item, ``block`` makes the producer wait (files: nothing
    is lost). Every dropped item is counted in :attr:`drops` by cause. An optional ``waker`` event
    is set on every put so one consumer can wait on many buffers.
    """

    def __init__(
        self,
        capacity: int,
        on_full: OnFull = "drop_oldest",
        *,
        name: str = "",
        waker: threading.Event | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"ring buffer capacity must be >= 1, got {capacity}")
        if on_full not in ON_FULL_POLICIES:
            raise ValueError(f"on_full must be one of {ON_FULL_POLICIES}, got {on_full!r}")
        self.capacity = capacity
        self.on_full: OnFull = on_full
        self.name = name
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._waker = waker
        self.drops: Counter[str] = Counter()
        self.puts = 0
        self.gets = 0
        self.high_water = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drained(self) -> bool:
        """Closed and empty: the consumer has everything."""
        with self._lock:
            return self._closed and not self._items

    def count_drop(self, cause: str, n: int = 1) -> None:
        """Count ``n`` items dropped downstream of the buffer (e.g. ``stale``)."""
        with self._lock:
            self.drops[cause] += n

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Add ``item``; returns False if it was not stored (dropped, closed or timed out)."""
        with self._lock:
            if self._closed:
                self.drops["closed"] += 1
                return False
            if len(self._items) >= self.capacity:
                if self.on_full == "drop_oldest":
                    self._items.popleft()
                    self.drops["buffer_full"] += 1
                elif self.on_full == "drop_newest":
                    self.drops["buffer_full"] += 1
                    return False
                else:
                    deadline = None if timeout is None else time.monotonic() + timeout
                    while len(self._items) >= self.capacity and not self._closed:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            self.drops["put_timeout"] += 1
                            return False
                        self._not_full.wait(remaining)
                    if self._closed:
                        self.drops["closed"] += 1
                        return False
            self._items.append(item)
            self.puts += 1
            self.high_water = max(self.high_water, len(self._items))
            self._not_empty.notify()
        if self._waker is not None:
            self._waker.set()
        return True

    def get(self, timeout: float | None = None) -> T | None:
        """Next item; None on timeout; raises :class:`BufferClosed` when closed and empty."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise BufferClosed(self.name)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._not_empty.wait(remaining)
            item = self._items.popleft()
            self.gets += 1
            self._not_full.notify()
            return item

    def get_nowait(self) -> T | None:
        """Next item or None if empty; raises :class:`BufferClosed` when closed and empty."""
        with self._lock:
            if not self._items:
                if self._closed:
                    raise BufferClosed(self.name)
                return None
            item = self._items.popleft()
            self.gets += 1
            self._not_full.notify()
            return item

    def close(self) -> None:
        """No more puts; a blocked producer wakes and its item is counted as ``closed``."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if self._waker is not None:
            self._waker.set()

    def clear(self, cause: str = "flushed") -> int:
        """Drop everything buffered (counted under ``cause``); returns how many."""
        with self._lock:
            n = len(self._items)
            self._items.clear()
            if n:
                self.drops[cause] += n
            self._not_full.notify_all()
            return n
