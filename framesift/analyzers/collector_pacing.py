"""Rate budgets of the collector, paced: a burst never spends a window's budget in its first minutes.

Each rate budget (``N`` per minute, hour or day) is two rules at once, in stream time:

* a **sliding window**: at most ``N`` keeps in *any* window of that length (a hard cap);
* a **token bucket**: it holds at most ``burst`` keeps (default: a tenth of ``N``, at least 1) and
  refills evenly, ``N`` per window. A burst of novel content spends the bucket, then keeps follow
  the refill rate, so the rest of the window still gets its share.

``min_interval_s`` adds a floor between two keeps of a source.
"""

from __future__ import annotations

import math
from collections import deque

WINDOWS = (("max_per_minute", 60.0), ("max_per_hour", 3600.0), ("max_per_day", 86400.0))


class SlidingWindow:
    """At most ``limit`` events in any window of ``period`` stream seconds (bounded deque)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque(maxlen=limit)

    def allows(self, t: float) -> bool:
        return len(self._times) < self.limit or t - self._times[0] >= self.period

    def record(self, t: float) -> None:
        self._times.append(t)


class TokenBucket:
    """Holds at most ``capacity`` tokens, refilled at ``limit / period`` per stream second."""

    def __init__(self, limit: int, period: float, capacity: int) -> None:
        self.rate = limit / period
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self._t: float | None = None

    def _refill(self, t: float) -> None:
        if self._t is not None and t > self._t:
            self.tokens = min(self.capacity, self.tokens + (t - self._t) * self.rate)
        if self._t is None or t > self._t:
            self._t = t

    def allows(self, t: float) -> bool:
        self._refill(t)
        return self.tokens >= 1.0 - 1e-9

    def record(self, t: float) -> None:
        self._refill(t)
        self.tokens -= 1.0


class Pacer:
    """The rate budgets of one source: a keep at ``t`` needs every window and bucket to allow it."""

    def __init__(self, budgets: list[tuple[int, float]], burst: int | None, min_interval_s: float) -> None:
        self.windows = [SlidingWindow(n, p) for n, p in budgets]
        self.buckets = [TokenBucket(n, p, burst or max(1, math.ceil(n / 10))) for n, p in budgets]
        self.min_interval_s = min_interval_s
        self.last: float | None = None

    def refusal(self, t: float) -> str | None:
        """Why a keep at ``t`` is refused (``min_interval`` or ``budget``), or None."""
        if self.last is not None and t - self.last < self.min_interval_s:
            return "min_interval"
        if not all(w.allows(t) for w in self.windows) or not all(b.allows(t) for b in self.buckets):
            return "budget"
        return None

    def record(self, t: float) -> None:
        for w in self.windows:
            w.record(t)
        for b in self.buckets:
            b.record(t)
        self.last = t
