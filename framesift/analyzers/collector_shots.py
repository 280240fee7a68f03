"""Shot-aware collection: the best frame of each shot, chosen among candidates that passed a quality
gate and lie outside transitions, once the scene detector has settled where the shots are.

A few frames per stream second are candidates (``candidates_per_s``). A candidate *settles* once
the scene_change analyzer can no longer report a boundary before it (its delay, in frames); it then
joins the open segment unless it lies inside a transition. A segment is a shot, or part of a long
shot whose content drifted away from where the segment started (``drift``, a cosine distance). It
closes at a boundary, on drift, at the source's end and, on live sources, ``decide_after_s`` after
it started (its best frame so far is then chosen; later content counts only through drift).

Memory per source: the pending candidates (at most the scene detector's delay of frames), and the
open segment's best candidate plus :data:`EXTRAS` spread in time.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from framesift.frame import EncodedImage

EXTRAS = 2  # candidates a segment keeps besides its best, spread in time (a total budget's fill)
MARGIN_CUT = 1  # frames either side of a cut that are never kept
MARGIN_GRADUAL = 3  # frames either side of a dissolve or fade that are never kept
JPEG_QUALITY = 90  # the frame store's default: it writes the pool's JPEG as it is (one compression)
CHANGE_WEIGHT = 10.0  # score lost per unit of cosine distance to the neighbouring candidates
FILL_SLACK = 2.0  # an extra (a total budget's fill) scores at most this much below its segment's best
RAMP = 0.4  # see ramp()
BLEND_SPAN = 0.2  # see blend()
EDGE_RATIO = 1.5  # a blend's neighbour this many times nearer its other neighbour is the mix's edge
HOLD_S = 1.0  # stream seconds a candidate waits before it joins its segment (see ShotTracker._settle)


@dataclass
class Candidate:
    """A frame judged for keeping: where it is, its embedding, its quality and, if it passed the
    gate, its picture (the frame's own array, or JPEG bytes once :meth:`compress` ran)."""

    index: int
    time: float  # stream time (monotonic)
    seconds: float  # presentation time
    pts: int
    time_base: Fraction
    wallclock: float
    emb: np.ndarray
    quality: dict[str, float]
    ok: bool
    pixels: np.ndarray | None = None
    jpeg: bytes | None = None
    size: tuple[int, int] | None = None  # (width, height) of the picture held as JPEG
    change: float = math.inf  # cosine distance to the neighbouring candidates (the nearer of the two)
    blend: bool = False  # looks like a mix of its neighbours (see blend()): never a fill frame
    edge: bool = False  # beside such a frame, still like its other neighbour: never a fill frame either
    ramp: int = 0  # on a brightness ramp, rising (1) or falling (-1): never kept (see ramp_tail())
    rise: float = 0.0  # brightness gained since the previous candidate
    part: int = 0  # within its segment: mixes (blends, ramps) seen before it (see Segment.add)

    @property
    def score(self) -> float:
        """Within a segment the sharpest, most contrasted, steadiest frame wins: a frame that differs
        from both neighbours lies in motion or in a transition the detector may have missed."""
        q = self.quality
        change = self.change if math.isfinite(self.change) else 0.0  # a lone candidate
        return math.log1p(q["sharpness"]) + 0.5 * math.log1p(q["contrast"]) - CHANGE_WEIGHT * change

    def compress(self) -> None:
        """Hold the picture as JPEG (a few hundred KB at 720p) instead of the decoded frame."""
        if self.pixels is not None:
            px = self.pixels
            bgr = cv2.cvtColor(px, cv2.COLOR_RGB2BGR) if px.ndim == 3 else px
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                self.size = (int(px.shape[1]), int(px.shape[0]))
                self.jpeg, self.pixels = buf.tobytes(), None

    def image(self) -> np.ndarray | EncodedImage:
        """The picture: the decoded frame, or the JPEG it is held as (written to the store as is)."""
        if self.pixels is not None:
            self.pixels.flags.writeable = False  # handed to the store: nobody writes to it
            return self.pixels
        assert self.jpeg is not None and self.size is not None, (
            "a candidate that failed the gate has no picture"
        )
        return EncodedImage(self.jpeg, "jpeg", JPEG_QUALITY, *self.size)


def measure(image: Any) -> dict[str, float]:
    """Mean brightness, contrast (luma standard deviation) and sharpness (variance of the Laplacian)
    of a frame, on a grey copy 320 pixels wide so that the figures do not depend on the resolution."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img  # grey first: a third to shrink
    if w > 320:
        gray = shrink_gray(gray, 320, max(1, round(h * 320 / w)))
    mean, std = cv2.meanStdDev(gray)
    return {
        "brightness": round(float(mean[0, 0]), 3),
        "contrast": round(float(std[0, 0]), 3),
        "sharpness": round(float(cv2.Laplacian(gray, cv2.CV_32F).var()), 3),
    }


def shrink_gray(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    """``cv2.resize(gray, (width, height), INTER_AREA)``, halving first while the sides stay whole
    multiples of the target: OpenCV's vectorised 2x2 average is ~15x faster than its 4x4 (1280x720
    → 320x180: 0.05 ms against 0.33), and each pixel stays within a level of one resize."""
    while gray.shape[1] % (2 * width) == 0 and gray.shape[0] % (2 * height) == 0:
        gray = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if gray.shape[1] == width and gray.shape[0] == height:
        return gray
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)


class Gate:
    """Quality floors (brightness, contrast, sharpness) and a brightness ceiling.

    With ``adaptive``, a floor never exceeds half the median of what the source itself showed over
    its last :data:`HISTORY` candidates, so a camera that is dark for hours (night) still gets keeps.
    """

    HISTORY = 256

    def __init__(
        self,
        min_brightness: float,
        max_brightness: float,
        min_contrast: float,
        min_sharpness: float,
        adaptive: bool,
    ) -> None:
        self.floors = {"brightness": min_brightness, "contrast": min_contrast, "sharpness": min_sharpness}
        self.max_brightness = max_brightness
        self.adaptive = adaptive
        self.seen: dict[str, deque[float]] = {k: deque(maxlen=self.HISTORY) for k in self.floors}

    def check(self, q: dict[str, float]) -> str | None:
        """Why ``q`` fails the gate (``dark``, ``bright``, ``flat``, ``blurred``), or None."""
        for k in self.floors:
            self.seen[k].append(q[k])
        if q["brightness"] > self.max_brightness:
            return "bright"
        for key, why in (("brightness", "dark"), ("contrast", "flat"), ("sharpness", "blurred")):
            floor = self.floors[key]
            if self.adaptive and len(self.seen[key]) >= 16:
                floor = min(floor, 0.5 * statistics.median(self.seen[key]))
            if q[key] < floor:
                return why
        return None


@dataclass
class Segment:
    """A shot, or a part of a long one (``kind`` ``shot`` or ``novel``), from stream time ``start``."""

    kind: str
    start: float
    end: float = 0.0
    best: Candidate | None = None
    extras: list[Candidate] = field(default_factory=list)
    anchor: np.ndarray | None = None
    picked: bool = False  # live sources: its frame was already chosen
    parts: int = 0  # mixes seen inside it: each a transition the detector may have missed
    mixing: bool = False  # the last candidate added was a blend or on a ramp

    def add(self, c: Candidate, extras: int) -> None:
        self.end = c.time
        if c.blend or c.ramp:
            self.mixing = True
        elif self.mixing:  # past a mix: perhaps another shot (the fill looks there first)
            self.parts, self.mixing = self.parts + 1, False
        c.part = self.parts
        if not c.ok:
            return
        if self.anchor is None:
            self.anchor = c.emb
        loser: Candidate | None = c
        if self.best is None or c.score > self.best.score:
            loser, self.best = self.best, c
        if loser is None or extras == 0:
            return
        assert self.best is not None
        self.extras = [x for x in self.extras if x.score >= self.best.score - FILL_SLACK]
        if loser.score < self.best.score - FILL_SLACK or loser.blend or loser.edge:
            return
        self.extras.append(loser)
        self.extras.sort(key=lambda x: x.time)
        if len(self.extras) > extras:  # stay diverse: drop the one most like another held frame
            del self.extras[self._most_redundant()]

    def _most_redundant(self) -> int:
        """The extra nearest (cosine to a tenth, then time) to the best or another extra: a segment
        that holds two shots the detector did not split keeps a frame of each for the fill, and
        similar frames are told apart by their distance in time."""
        assert self.best is not None
        held = [self.best, *self.extras]
        embs = np.stack([x.emb for x in held])
        sim = embs @ embs.T
        np.fill_diagonal(sim, -np.inf)
        keys = []
        for i, x in enumerate(self.extras, start=1):
            gap = min(abs(x.time - y.time) for j, y in enumerate(held) if j != i)
            keys.append((round(float(sim[i].max()), 1), -gap))
        return int(max(range(len(keys)), key=keys.__getitem__))

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)

    def compress(self) -> None:
        for c in (self.best, *self.extras):
            if c is not None:
                c.compress()


def ramp(prev: Candidate | None, c: Candidate, nxt: Candidate | None) -> int:
    """``c`` lies on a brightness ramp (a fade the scene detector missed or cut short): its
    neighbours' brightness differs by at least :data:`RAMP` of the brighter one, and ``c``'s lies
    between them, a fifth of the way from each."""
    if prev is None or nxt is None:
        return 0
    a, b, z = prev.quality["brightness"], c.quality["brightness"], nxt.quality["brightness"]
    lo, hi = min(a, z), max(a, z)
    span = hi - lo
    on = span >= max(RAMP * hi, 8.0) and lo + 0.2 * span <= b <= hi - 0.2 * span
    return (1 if z > a else -1) if on else 0


def ramp_tail(prev: Candidate | None, c: Candidate) -> int:
    """``c`` follows a candidate on a ramp and its brightness still moves the same way, by a
    quarter of :data:`RAMP` of the brighter: the ramp's flattening end, where :func:`ramp` no
    longer sees the span (the last frames of a fade-in, or of a dissolve from a dark shot to a
    bright one). Returns the ramp's direction, or 0."""
    if prev is None or not prev.ramp:
        return 0
    a, b = prev.quality["brightness"], c.quality["brightness"]
    return prev.ramp if (b - a) * prev.ramp >= 0.25 * RAMP * max(a, b, 1.0) else 0


def ramp_head(prev: Candidate, c: Candidate) -> bool:
    """``c`` is on a ramp that its predecessor ``prev`` (not on one) had already begun: ``prev``
    moved the ramp's way by a quarter of :data:`RAMP` of the brighter, as :func:`ramp_tail` asks at
    the other end (the first frames of a fade-out, still within a fifth of full brightness)."""
    if not c.ramp or prev.ramp:
        return False
    before = prev.quality["brightness"] - prev.rise
    return prev.rise * c.ramp >= 0.25 * RAMP * max(before, prev.quality["brightness"], 1.0)


def blend(prev: Candidate | None, c: Candidate, nxt: Candidate | None) -> bool:
    """``c`` looks like a mix of its neighbours, which differ by at least :data:`BLEND_SPAN`: it
    lies between them (a fifth of the way from each, nearly on the path) — the middle of a dissolve
    the detector missed, or fast motion. Such a frame is novel against everything, so it is kept
    only as a segment's best, never to fill a budget."""
    if prev is None or nxt is None:
        return False
    span = 1.0 - float(np.dot(prev.emb, nxt.emb))
    a, z = 1.0 - float(np.dot(prev.emb, c.emb)), 1.0 - float(np.dot(c.emb, nxt.emb))
    return span >= BLEND_SPAN and min(a, z) >= 0.2 * span and a + z <= 1.2 * span


class ShotTracker:
    """One source's candidates, settled into segments as the scene detector's boundaries allow."""

    def __init__(self, delay_frames: int, drift: float, decide_after_s: float | None, extras: int) -> None:
        self.delay_frames = delay_frames + MARGIN_GRADUAL
        self.drift = drift
        self.decide_after_s = decide_after_s
        self.extras = extras
        self.pending: deque[Candidate] = deque()
        self.excluded: deque[tuple[int, int]] = deque(maxlen=64)  # frame ranges inside transitions
        self.segment: Segment | None = None
        self.last: Candidate | None = None  # the last settled candidate
        self.held: deque[Candidate] = deque(maxlen=256)  # settled, not yet in the segment (HOLD_S)

    def add(self, c: Candidate | None, current: int) -> list[Segment]:
        """A new candidate (or None: frame ``current`` went by); returns the segments that closed."""
        if c is not None:
            if self.pending or self.last is not None:
                prev = self.pending[-1] if self.pending else self.last
                assert prev is not None
                d = 1.0 - float(np.dot(prev.emb, c.emb))
                c.change = d  # the nearer of the two neighbours, once the next one is known:
                prev.change = min(prev.change, d)  # a frame beside a cut keeps a quiet side
            self.pending.append(c)
        closed: list[Segment] = []
        while self.pending and self.pending[0].index <= current - self.delay_frames:
            closed += self._settle(self.pending.popleft())
        return closed

    def boundary(self, index: int, start: int, end: int, gradual: bool) -> list[Segment]:
        """The scene detector found a shot opening at ``index``, after a transition ``start..end``."""
        m = MARGIN_GRADUAL if gradual else MARGIN_CUT
        self.excluded.append((start - m, end + m))
        closed: list[Segment] = []
        while self.pending and self.pending[0].index < index:
            closed += self._settle(self.pending.popleft())
        return closed + self._close()

    def end(self) -> list[Segment]:
        """The source ended: settle what is pending and close the open segment."""
        closed: list[Segment] = []
        while self.pending:
            closed += self._settle(self.pending.popleft())
        return closed + self._close()

    def _close(self) -> list[Segment]:
        seg, self.segment = self.segment, None
        if seg is None:
            return []
        while self.held:
            seg.add(self.held.popleft(), self.extras)
        return [] if seg.picked else [seg]

    def _inside_transition(self, index: int) -> bool:
        return any(lo <= index <= hi for lo, hi in self.excluded)

    def _settle(self, c: Candidate) -> list[Segment]:
        prev, self.last = self.last, c
        nxt = self.pending[0] if self.pending else None
        c.ramp = ramp(prev, c, nxt) or ramp_tail(prev, c)
        held = prev is not None and bool(self.held) and self.held[-1] is prev  # not in its segment yet
        if prev is not None:
            c.rise = c.quality["brightness"] - prev.quality["brightness"]
            if held and ramp_head(prev, c):
                prev.ramp, prev.ok, prev.pixels = c.ramp, False, None
        if self._inside_transition(c.index) or c.ramp:
            c.ok, c.pixels = False, None
        c.blend = blend(prev, c, nxt)
        if c.blend and held and len(self.held) >= 2:
            assert prev is not None
            prev.blend = prev.blend or self.held[-2].blend  # between two mix frames: inside the mix
        if prev is not None and (c.blend or prev.blend):
            x = prev if c.blend else c  # beside a mix's middle: its first or last frames?
            x.edge = x.edge or 1.0 - float(np.dot(prev.emb, c.emb)) >= EDGE_RATIO * x.change
        closed: list[Segment] = []
        seg = self.segment
        if seg is None:
            seg = self.segment = Segment("shot", c.time)
        elif (
            (ref := self._reference(seg)) is not None
            and 1.0 - float(np.dot(ref, c.emb)) >= self.drift
            and c.ok
        ):
            self._drifted(ref, c)
            # within HOLD_S: a transition the detector missed (a new shot), not a long shot's drift
            abrupt = bool(self.held) and 1.0 - float(np.dot(self.held[0].emb, c.emb)) >= self.drift
            closed += self._close()
            seg = self.segment = Segment("shot" if abrupt else "novel", c.time)
        if seg.anchor is None and c.ok:
            seg.anchor = c.emb
        self.held.append(c)
        while self.held and self.held[0].time <= c.time - HOLD_S:
            seg.add(self.held.popleft(), self.extras)
        if (
            self.decide_after_s is not None
            and not seg.picked
            and seg.best is not None
            and c.time - seg.start >= self.decide_after_s
        ):
            closed.append(Segment(seg.kind, seg.start, c.time, seg.best, [], seg.anchor))
            seg.picked = True
        return closed

    def _reference(self, seg: Segment) -> np.ndarray | None:
        """What drift is measured from: the segment's best frame so far, held ones included (steady
        and sharp, so not the blend a segment opened on after a missed dissolve), else its first."""
        frames = [x for x in (seg.best, *self.held) if x is not None and x.ok and not x.blend]
        return max(frames, key=lambda x: x.score).emb if frames else seg.anchor

    def _drifted(self, ref: np.ndarray, new: Candidate) -> None:
        """The content drifted away from a segment (its reference ``ref``) at ``new``: the held
        candidates nearer ``new`` than ``ref`` are on their way there, inside a transition the
        detector may have missed (a dissolve between similar shots), and are never kept."""
        for x in self.held:
            if x.ok and float(np.dot(x.emb, new.emb)) > float(np.dot(x.emb, ref)):
                x.ok, x.pixels = False, None
