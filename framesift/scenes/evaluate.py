"""Precision/recall of detected transitions against ground truth (one-to-one, with a frame tolerance)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from framesift.samples_scenes import Transition


@dataclass(frozen=True)
class Score:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def match(truth: Sequence[Transition], detected: Sequence[tuple[int, int]], tolerance: int = 2) -> Score:
    """A detection ``(start, end)`` (a cut: start == end) matches a true transition when it overlaps
    the transition's interval widened by ``tolerance`` frames; each side is used at most once
    (closest centres first)."""
    pairs = []
    for i, t in enumerate(truth):
        lo, hi = t.start - tolerance, t.end + tolerance
        for j, (a, b) in enumerate(detected):
            if a <= hi and b >= lo:
                pairs.append((abs((a + b) / 2 - (t.start + t.end) / 2), i, j))
    used_t: set[int] = set()
    used_d: set[int] = set()
    for _, i, j in sorted(pairs):
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
    tp = len(used_t)
    return Score(tp, len(detected) - tp, len(truth) - tp)
