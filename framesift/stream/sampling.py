"""Frame selection by presentation time, output geometry, and small helpers shared by sources."""

from __future__ import annotations

import math
from fractions import Fraction


def rate_fraction(fps: float) -> Fraction:
    """``fps`` as an exact fraction (29.97 → 2997/100; 30000/1001 stays close to itself)."""
    return Fraction(fps).limit_denominator(100_000)


class FpsSampler:
    """Keeps a frame when its presentation time crosses the next ``1/target_fps`` slot.

    Slots are anchored at the first kept frame: ``t0, t0 + 1/f, t0 + 2/f, ...``; a frame is kept when
    ``t >= next slot``, and the next slot is the first one after ``t``. Decisions use exact
    :class:`~fractions.Fraction` arithmetic, so 25 → 5 fps keeps every 5th frame exactly, and a
    non-integer ratio (25 → 10 fps) keeps frames 0, 3, 5, 8, 10, ... (10 per second on average).
    """

    def __init__(self, target_fps: float | None) -> None:
        self.period: Fraction | None = None if target_fps is None else 1 / rate_fraction(target_fps)
        self._t0: Fraction | None = None
        self._next: Fraction | None = None

    def reset(self) -> None:
        """Forget the anchor (after a reconnect, when timestamps restart)."""
        self._t0 = self._next = None

    def keep(self, t: Fraction) -> bool:
        """True when the frame at time ``t`` (seconds) is kept."""
        if self.period is None:
            return True
        if self._t0 is None or self._next is None:
            self._t0, self._next = t, t + self.period
            return True
        if t < self._t0:  # timestamps went backwards (stream restarted): re-anchor
            self._t0, self._next = t, t + self.period
            return True
        if t < self._next:
            return False
        k = math.floor((t - self._t0) / self.period) + 1
        self._next = self._t0 + k * self.period
        return True


def output_size(src_w: int, src_h: int, width: int | None, height: int | None) -> tuple[int, int] | None:
    """Target ``(width, height)``; one side given keeps the aspect ratio (rounded to even); None: as is."""
    if width is None and height is None:
        return None
    if width is not None and height is not None:
        return width, height
    if width is not None:
        h = max(2, round(src_h * width / src_w / 2) * 2)
        return width, h
    assert height is not None
    w = max(2, round(src_w * height / src_h / 2) * 2)
    return w, height
