"""Transitions the scene detector missed: a mix inside a segment opens a part the total budget's fill
looks at first, and a fade's first frames are on its ramp."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from framesift.analyzers.collector_select import Choice, select, units_of
from framesift.analyzers.collector_shots import Candidate, Segment, ShotTracker


def _cand(i: int, emb: list[float], brightness: float = 100.0) -> Candidate:
    v = np.asarray(emb, np.float32)
    q = {"brightness": brightness, "contrast": 40.0, "sharpness": 200.0}
    return Candidate(i, i / 4, i / 4, i, Fraction(1, 4), 0.0, v / np.linalg.norm(v), q, True)


def _track(cands: list[Candidate]) -> list[Segment]:
    """Feed ``cands`` to a tracker whose drift never splits (only a boundary would)."""
    tracker = ShotTracker(delay_frames=0, drift=2.0, decide_after_s=None, extras=2)
    closed = []
    for c in cands:
        closed += tracker.add(c, c.index + 2)  # each settles once the next one is known
    return closed + tracker.end()


def _select(segments: list[Segment], n: int) -> list[Choice]:
    return select(
        segments,
        n,
        bank_similarity=lambda e: -2.0,
        relevance=lambda e: None,
        threshold=0.35,
        prompt_threshold=None,
    )


def test_a_mix_inside_a_segment_opens_a_part() -> None:
    """Two shots joined by a dissolve the detector missed: one segment, and the frames past the
    mix's middle are its second part; steady motion (every frame between its neighbours) is one."""
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    mix = [0.95 * a + 0.05 * b, 0.5 * a + 0.5 * b, 0.05 * a + 0.95 * b]
    cands = [_cand(i, list(e)) for i, e in enumerate([a] * 6 + mix + [b] * 6)]
    (seg,) = _track(cands)
    assert seg.parts == 1
    assert [c.part for c in cands] == [0] * 8 + [1] * 7
    unit = units_of([seg])
    assert {unit[id(c)] for c in (seg.best, *seg.extras) if c is not None} <= {(0, 0), (0, 1)}


def test_the_fill_looks_first_at_a_part_with_no_frame() -> None:
    """A segment's best frame lies in its first part; of the two leftover frames, the one in the
    part with no frame yet fills the budget, though the other is more unlike what is kept. Without
    the mix both lie in one part and the more different one wins, as before."""
    a = [1.0, 0.0, 0.0]
    other = _cand(40, [1.0, 0.0, 0.9])  # part 0, 10 s from the best frame, 0.26 from it
    second = _cand(60, [1.0, 0.5, 0.0])  # part 1 (past a mix), 0.11 from the best frame
    second.part = 1
    seg = Segment("shot", 0.0, best=_cand(0, a), extras=[other, second], parts=1)
    assert [c.candidate.index for c in _select([seg], 2)] == [0, 60]
    second.part, seg.parts = 0, 0
    assert [c.candidate.index for c in _select([seg], 2)] == [0, 40]


def test_a_fades_first_frame_is_on_the_ramp() -> None:
    """A fade-out 100 → 89 → 40 → 10: 89 is still within a fifth of the top, where :func:`ramp` does
    not see it, but it already fell the ramp's way; a steady shot's jitter (100 → 97) stays clean."""
    a = [1.0, 0.0, 0.0]
    fade = [_cand(i, a, v) for i, v in enumerate([100.0, 100.0, 100.0, 89.0, 40.0, 10.0, 0.0, 0.0])]
    _track(fade)
    assert [c.index for c in fade if c.ramp] == [3, 4, 5, 6]
    assert not fade[3].ok and fade[2].ok
    steady = [_cand(i, a, v) for i, v in enumerate([100.0, 100.0, 97.0, 100.0, 98.0, 100.0])]
    _track(steady)
    assert all(c.ok and not c.ramp for c in steady)
