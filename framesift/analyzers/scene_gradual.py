"""Gradual transitions (dissolves, fades) for the scene detector: runs of the k-frame distance, and
fades through black seen by brightness alone."""

from __future__ import annotations

import abc
from typing import Protocol

from framesift.analyzers.scene_signal import (
    FADE_FLOOR,
    GAP,
    Dip,
    Entry,
    Pending,
    Run,
    SourceState,
    dist,
    robust_threshold,
)
from framesift.events import Event, SceneChange

MIX_SLACK = 1.5  # a dissolve's longer side is at most this times its shorter (see symmetric())
#: A run opens only once the gradual signal has this many quiet values: on the floor a stream's first
#: frames would give, a shot's own slow motion keeps a run open through the shots after it.
MIN_HISTORY = 4


class GradualSettings(Protocol):
    """The scene-change settings the gradual detector reads."""

    @property
    def window(self) -> int: ...
    @property
    def threshold_ratio(self) -> float: ...
    @property
    def gradual_threshold_k(self) -> float: ...
    @property
    def max_transition(self) -> int: ...
    @property
    def min_scene_len(self) -> int: ...


class GradualDetector(abc.ABC):
    """The gradual half of the scene detector (a mixin: the analyzer provides the settings, the
    ``k``-frame lag, the floor and :meth:`_emit`)."""

    cfg: GradualSettings
    k: int
    gradual_floor: float

    @abc.abstractmethod
    def _emit(
        self, st: SourceState, kind: str, index: int, score: float, start: int, end: int, now_pos: int
    ) -> SceneChange:
        """A SceneChange for a boundary at ``index`` after a transition ``start..end``."""

    # -- gradual -----------------------------------------------------------------------------------

    def _gradual_step(self, st: SourceState, e: Entry, *, final: bool) -> list[Event]:
        c = self.cfg
        thr = robust_threshold(st.dk_hist, c.gradual_threshold_k, c.threshold_ratio, 0.1 * self.gradual_floor)
        run = st.run
        if e.dk > thr and (run is not None or len(st.dk_hist) >= MIN_HISTORY):
            if run is None:
                st.run = Run(e.index, e.index, 0, [e.dk])
            else:
                run.last, run.quiet = e.index, 0
                run.values.append(e.dk)
                if len(run.values) > c.max_transition + self.k:  # frames analysed, not index span
                    st.dk_hist.extend(run.values[-c.window :])  # a long movement, not a transition
                    st.run = None
            return []
        if run is None:
            st.dk_hist.append(e.dk)
            return []
        run.quiet += 1
        run.values.append(e.dk)
        if run.quiet > GAP:
            st.run = None
            return self._gradual_close(st, run, len(st.ring) - 1)
        return []

    def _gradual_close(self, st: SourceState, run: Run, q_pos: int) -> list[Event]:
        c = self.cfg
        q = st.ring[q_pos]
        p_pos = max(0, st.pos(run.start) - self.k)
        p_index = st.ring[p_pos].index
        if q_pos <= p_pos + 1:
            return []
        pre = [st.ring[j].emb for j in range(max(0, p_pos - 2), p_pos + 1)]
        pre_dark = st.ring[p_pos].dark
        if q.dark:  # into black: wait for the picture
            if st.pending is None and not pre_dark and st.seen_light:
                first_change = st.leave(p_pos, q_pos, pre)
                st.pending = Pending(first_change, pre, p_index)
            return []
        pending = st.pending
        if pre_dark:
            st.pending = None
            if pending is None:
                return []  # the stream opened on black: the first scene fades in
            pre, start = pending.pre, pending.start
        else:
            start = max(st.leave(p_pos, q_pos, pre), p_index)
        total = min(dist(p, q.emb) for p in pre)
        if total < FADE_FLOOR * self.gradual_floor:
            return []
        end = min(st.arrive(p_pos, q_pos, q.emb), run.last)
        if end < start:
            start, end = end, start
        s_pos, e_pos = st.pos(start), st.pos(end)
        held = pending is not None and pending.start < st.ring[0].index  # black longer than the ring
        dip = None if held else st.darkest(min(s_pos, p_pos + 1), max(e_pos, q_pos - 1), p_pos, q_pos)
        dark_inside = pending is not None or dip is not None
        if st.dip is not None and st.dip.start <= end:
            return []  # the brightness watch is inside this fade: it reports it once the picture is back
        if not dark_inside and total < self.gradual_floor:
            return []  # a fade through black is an edit even between similar shots; a mix needs more
        if dip is not None:  # a fade's bounds come from its brightness: where it starts dimming
            start, end = st.fade_bounds(*dip)
        elif dark_inside:
            start, end = st.fade_bounds(start, end)
        elif e_pos > s_pos + 1:
            # The first and last frames of a mix differ from the shots by less than the noise.
            start, end = st.ring[max(0, s_pos - 1)].index, st.ring[min(q_pos - 1, e_pos + 1)].index
        if any(start - 2 <= cut <= end + 2 for cut in st.cuts):
            return []  # the hard cut already explains this change
        if st.last_boundary_end is not None and start - st.last_boundary_end < c.min_scene_len:
            return []
        if st.pos(end) - st.pos(start) <= 1 and not pre_dark and pending is None:
            st.cuts.append(start)
            return [self._emit(st, "cut", start, total, start, start, q_pos)]
        kind = "fade" if dark_inside else "dissolve"
        index = st.crossover(start, end, pre, q.emb)
        if kind == "dissolve":
            start, end = symmetric(start, index, end)
        return [self._emit(st, kind, index, total, start, end, q_pos)]

    def _dip_close(self, st: SourceState, dip: Dip, end: int) -> list[Event]:
        """A fade through black seen by brightness (:meth:`SourceState.dip_step`), unless a boundary
        already covers it or the shots on both sides look alike (lights off and on)."""
        now = st.ring[-1]
        total = min(dist(p, now.emb) for p in dip.pre)
        if total < FADE_FLOOR * self.gradual_floor or any(dip.start - 2 <= c <= end + 2 for c in st.cuts):
            return []
        if st.last_boundary_end is not None and dip.start - st.last_boundary_end < self.cfg.min_scene_len:
            return []
        index = st.crossover(dip.start, end, dip.pre, now.emb)
        return [self._emit(st, "fade", index, total, dip.start, end, len(st.ring) - 1)]


def symmetric(start: int, index: int, end: int) -> tuple[int, int]:
    """A mix's bounds around its crossover ``index``, the longer side cut to :data:`MIX_SLACK`
    times the shorter (plus two frames): a mix is about symmetric, and a side that ran on much
    longer took in the motion of the shot beside it, which is not part of the transition."""
    half = MIX_SLACK * min(index - start, end - index) + 2
    return max(start, round(index - half)), min(end, round(index + half))
