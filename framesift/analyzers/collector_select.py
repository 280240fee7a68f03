"""A total budget: the ``N`` frames that best cover a source, chosen from its segments in one pass.

Closed segments (shots, and the later content of long shots) wait in a pool with their best
candidate and a few spread in time, as JPEG. :func:`select` picks:

1. one frame per segment, segments ranked by prompt match, then shots before the later content of
   long shots, then by length (log) times novelty against what is already kept (the memory bank:
   a restart's store, other cameras). A segment is skipped when its frame is within the novelty
   threshold of the bank, or of a frame already chosen (an eighth of it for a shot: a cut
   already tells it apart, so only a near-duplicate — the same setup recurring — is skipped);
2. while fewer than ``N`` are chosen, a fill over every remaining candidate (the skipped
   segments' frames and the extras). A segment in which the tracker saw a mix (a blend or a ramp:
   a transition the detector missed) has a part past each one (:func:`units_of`); a part with no
   chosen frame goes first — the one whose candidates lie farthest from the chosen frames, with
   its best-scoring candidate, as a shot's — so the second of two shots the detector joined gets
   its frame before a shot already covered gets a second. Otherwise a farthest-point fill: the
   candidate farthest from all chosen frames, distances capped at the novelty threshold (beyond it
   every frame is new) and scaled down for a candidate less than :data:`FILL_SPREAD_S` from a
   chosen frame of its own part (the same shot a moment later adds little; a shot the detector did
   not split off lies seconds away; across a boundary, nearness in time says nothing), ties broken
   towards the largest gap in time. A candidate within an eighth of the novelty threshold of a
   chosen frame (the shots' near-duplicate rule), or within a quarter of it of the bank (stored
   already), is never taken (fewer than ``N`` frames are then kept, and the run says so).

The pool is bounded: when it holds ``3N`` segments it is cut to the ``2N`` that :func:`select` would
rank first, and at most ``2N`` extras are held in all (over that, the extra most like a frame of
its own segment goes, wherever it is). Memory per source: at most ``5N`` JPEGs (about ``N`` × 0.8 MB
at 1280x720).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from framesift.analyzers.collector_shots import Candidate, Segment

#: The fill scales a candidate's distance by its gap in time to a chosen frame, up to this (seconds).
FILL_SPREAD_S = 2.0


@dataclass
class Choice:
    candidate: Candidate
    reason: str
    novelty: float
    relevance: float | None


def _rank(
    seg: Segment, novelty: float, relevance: float | None, prompt: float | None
) -> tuple[int, int, float]:
    """Prompt matches first, then shots before a long shot's later content, then length × novelty."""
    matched = int(relevance is not None and prompt is not None and relevance >= prompt)
    return matched, int(seg.kind == "shot"), math.log1p(seg.length + 0.5) * (0.5 + novelty)


def select(
    segments: list[Segment],
    n: int,
    *,
    bank_similarity: Callable[[np.ndarray], float],
    relevance: Callable[[np.ndarray], float | None],
    threshold: float,
    prompt_threshold: float | None,
) -> list[Choice]:
    """Up to ``n`` choices (in rank order) from ``segments``; see the module's rules."""
    scored = []
    for seg in segments:
        if seg.best is None:
            continue
        sim = bank_similarity(seg.best.emb)
        novelty = 1.0 - sim if sim > -1.0 else 1.0
        rel = relevance(seg.best.emb)
        scored.append((_rank(seg, novelty, rel, prompt_threshold), seg, novelty, rel))
    scored.sort(key=lambda x: x[0], reverse=True)
    unit = units_of(segments)
    chosen: list[Choice] = []
    vecs: list[np.ndarray] = []
    rest: list[Candidate] = []
    for _, seg, novelty, rel in scored:
        assert seg.best is not None
        e = seg.best.emb
        near = max((float(v @ e) for v in vecs), default=-1.0)
        apart = threshold / 8 if seg.kind == "shot" else threshold  # a cut already tells shots apart
        if len(chosen) < n and novelty >= threshold and 1.0 - near >= apart:
            matched = rel is not None and prompt_threshold is not None and rel >= prompt_threshold
            reason = "prompt" if matched else seg.kind
            chosen.append(Choice(seg.best, reason, novelty, rel))
            vecs.append(e)
        else:
            rest.append(seg.best)
        rest += seg.extras
    _fill(chosen, vecs, rest, n, unit, bank_similarity, relevance, threshold)
    return chosen


def _fill(
    chosen: list[Choice],
    vecs: list[np.ndarray],
    rest: list[Candidate],
    n: int,
    unit: dict[int, tuple[int, int]],
    bank_similarity: Callable[[np.ndarray], float],
    relevance: Callable[[np.ndarray], float | None],
    threshold: float,
) -> None:
    """Add fill choices from ``rest`` until ``n`` are chosen (see the module's rules)."""
    while len(chosen) < n and rest:
        keys: dict[int, tuple[float, float]] = {}
        for i, c in enumerate(rest):
            banked = bank_similarity(c.emb)
            near = max((float(v @ c.emb) for v in vecs), default=-1.0)
            if 1.0 - banked < threshold / 4 or 1.0 - near < threshold / 8:
                continue  # stored already (a restart, another camera), or a near-duplicate of a choice
            sim = max(banked, near)
            dist = 1.0 - sim if sim > -1.0 else 2.0
            gap = min((abs(c.time - ch.candidate.time) for ch in chosen), default=math.inf)
            same = [abs(c.time - ch.candidate.time) for ch in chosen if unit[id(ch.candidate)] == unit[id(c)]]
            near_in_time = min(1.0, min(same, default=math.inf) / FILL_SPREAD_S)  # its shot, a moment later
            keys[i] = (round(min(dist, threshold) * near_in_time, 3), gap)  # then the widest gap in time
        if not keys:
            break
        covered = {unit[id(ch.candidate)] for ch in chosen}
        parts: dict[tuple[int, int], tuple[float, float]] = {}
        for i, k in keys.items():
            u = unit[id(rest[i])]
            if u not in covered:
                parts[u] = max(parts.get(u, k), k)
        if parts:  # a part with no frame yet: the farthest, then its best frame (as a shot's)
            u = max(parts, key=parts.__getitem__)
            best_i = max((i for i in keys if unit[id(rest[i])] == u), key=lambda i: rest[i].score)
        else:
            best_i = max(keys, key=keys.__getitem__)
        c = rest.pop(best_i)
        chosen.append(Choice(c, "fill", min(keys[best_i][0], 1.0), relevance(c.emb)))
        vecs.append(c.emb)


def units_of(segments: list[Segment]) -> dict[int, tuple[int, int]]:
    """The shot (as a number) and the part of it that each candidate of ``segments`` lies in, keyed
    by ``id``: a segment opens a shot at a boundary, a long shot's later content (``novel``)
    continues it, and a mix inside a segment (a transition the detector may have missed) opens a
    part."""
    out: dict[int, tuple[int, int]] = {}
    shot, base = -1, 0
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.kind != "novel" or shot < 0:
            shot, base = shot + 1, 0
        for c in (seg.best, *seg.extras):
            if c is not None:
                out[id(c)] = (shot, base + c.part)
        base += seg.parts
    return out


class Pool:
    """The closed segments of one source under a total budget of ``n`` frames, bounded."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.segments: list[Segment] = []

    def extras_held(self) -> int:
        return sum(len(s.extras) for s in self.segments)

    def add(self, seg: Segment, rank: Callable[[Segment], tuple[int, int, float]]) -> None:
        """Hold ``seg`` (compressed); at ``3n`` segments keep the ``2n`` ranked first by ``rank``."""
        self.segments.append(seg)
        self._trim_extras()
        seg.compress()
        if len(self.segments) >= 3 * self.n:
            first = sorted(self.segments, key=rank, reverse=True)[: 2 * self.n]
            self.segments = sorted(first, key=lambda s: s.start)

    def _trim_extras(self) -> None:
        """At most ``2n`` extras in all: while over, drop the one most like another frame of its own
        segment (it adds the least), wherever it is: a late segment that holds shots the detector
        did not split keeps its extras even when earlier segments filled the quota."""
        while self.extras_held() > 2 * self.n:
            worst: tuple[float, Segment, int] | None = None
            for seg in self.segments:
                for i, x in enumerate(seg.extras):
                    sim = max(
                        float(x.emb @ y.emb) for y in (seg.best, *seg.extras) if y is not None and y is not x
                    )
                    if worst is None or sim > worst[0]:
                        worst = (sim, seg, i)
            assert worst is not None
            del worst[1].extras[worst[2]]


def ranker(
    bank_similarity: Callable[[np.ndarray], float],
    relevance: Callable[[np.ndarray], float | None],
    prompt_threshold: float | None,
) -> Callable[[Segment], tuple[int, int, float]]:
    """The rank :func:`select` gives a segment, as a key function."""

    def key(seg: Segment) -> tuple[int, int, float]:
        if seg.best is None:
            return (-1, 0, 0.0)
        sim = bank_similarity(seg.best.emb)
        return _rank(seg, 1.0 - sim if sim > -1.0 else 1.0, relevance(seg.best.emb), prompt_threshold)

    return key
