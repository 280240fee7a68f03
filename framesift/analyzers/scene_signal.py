"""The scene detector's building blocks: robust thresholds, black frames, per-source state."""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framesift.frame import Frame

GAP = 2  # quiet frames that end a gradual run
DIP = 0.25  # a run whose darkest frame is this dim next to both sides is a fade through black
#: A fade through black needs only this share of ``gradual_min_score`` between the shots around it.
FADE_FLOOR = 1 / 3


def robust_threshold(
    values: Sequence[float], k: float, ratio: float, floor: float, peak_ratio: float = 1.6
) -> float:
    """``max(floor, median + k·1.4826·MAD, ratio·median, peak_ratio·p90)`` of ``values``.

    The p90 term keeps recurring bursts (flicker, a changing on-screen counter, fast action) from
    passing as cuts when the median is low; ``floor`` alone applies to fewer than 4 values.
    """
    n = len(values)
    if n < 4:
        return floor
    vals = sorted(values)  # a few dozen floats: plain Python beats numpy's median/percentile here
    mid = n // 2
    med = vals[mid] if n % 2 else 0.5 * (vals[mid - 1] + vals[mid])
    dev = sorted(abs(v - med) for v in vals)
    mad = dev[mid] if n % 2 else 0.5 * (dev[mid - 1] + dev[mid])
    p90 = vals[min(n - 1, int(0.9 * (n - 1) + 0.5))]
    return max(floor, med + k * 1.4826 * mad, ratio * med, peak_ratio * p90)


def is_dark(image: Any, level: float) -> tuple[bool, float]:
    """(black?, mean luma): black when no cell of a 32x18 area-averaged grid reaches ``level``.

    Cells, not pixels: small bright text on black (a title card) is not black.
    """
    if not isinstance(image, np.ndarray):
        return False, 128.0
    h = image.shape[0]
    return grid_dark(cv2.resize(image[:: max(1, h // 144)], (32, 18), interpolation=cv2.INTER_AREA), level)


def signal_batch(
    primary: Any, frames: Sequence[Frame], level: float
) -> tuple[np.ndarray, list[tuple[bool, float] | None]]:
    """The every-frame signal of a batch: embeddings, and (black?, mean luma) per frame when the
    pixel embedder's 32x18 grid gives it for free (each frame shrunk once, used twice)."""
    from framesift.engines.models.pixel import EMB_KEY, GRID_KEY, PixelEmbedder

    if isinstance(primary, PixelEmbedder) and all(isinstance(f.image, np.ndarray) for f in frames):
        grids = np.stack([primary.small(np.asarray(f.image)) for f in frames])
        embs = primary.embed_small(grids)
        for f, g, e in zip(frames, grids, embs, strict=True):
            # the pipeline's pixel embedder reuses both (the collector's candidates)
            f.meta[GRID_KEY] = g
            f.meta[EMB_KEY] = (primary.signature, e)
        # mean of the channels, as grid_dark; summed channel by channel (exact for uint8, and numpy
        # reduces a 3-long last axis ~15x slower): the darkness of the whole batch at once
        luma = (grids[..., 0].astype(np.float64) + grids[..., 1] + grids[..., 2]) / 3.0
        darks = zip((luma.max(axis=(1, 2)) < level).tolist(), luma.mean(axis=(1, 2)).tolist(), strict=True)
        return embs, [(bool(d), float(m)) for d, m in darks]
    return primary.embed_images(frames), [None] * len(frames)


def grid_dark(grid: np.ndarray, level: float) -> tuple[bool, float]:
    """:func:`is_dark` of a picture already area-averaged to its 32x18 grid."""
    luma = grid.mean(axis=2) if grid.ndim == 3 else grid.astype(np.float32)
    return bool(luma.max() < level), float(luma.mean())


@dataclass
class Entry:
    index: int
    pts: int
    time_base: Fraction
    emb: np.ndarray
    dark: bool
    luma: float = 128.0
    d1: float = 0.0
    dk: float = 0.0
    thumb: np.ndarray | None = None


@dataclass
class Run:
    start: int
    last: int
    quiet: int = 0
    values: list[float] = field(default_factory=list)


@dataclass
class Pending:
    """A transition into black, waiting for the picture to come back."""

    start: int
    pre: list[np.ndarray]
    pre_index: int


@dataclass
class Dip:
    """A fade through black in progress: where the picture began to dim, the black frames so far,
    and the look before it."""

    start: int
    last_dark: int
    pre: list[np.ndarray]


class SourceState:
    def __init__(self, source: str, window: int, history: int, frames_kept: int) -> None:
        self.source = source
        self.ring: deque[Entry] = deque(maxlen=history)
        self.frames: deque[Frame] = deque(maxlen=frames_kept)
        self.d1_hist: deque[float] = deque(maxlen=window)
        self.dk_hist: deque[float] = deque(maxlen=window)
        self.decided = -1  # last frame index decided by the cut detector
        self.run: Run | None = None
        self.pending: Pending | None = None
        self.last_boundary: int | None = None
        self.last_boundary_end: int | None = None
        self.cuts: deque[int] = deque(maxlen=16)
        self.scene_id = 1  # the scene that is open: 1-based, like PySceneDetect's scene list
        self.seen_light = False  # a non-black frame was seen (so a fade-in is a change, not the start)
        self.dip: Dip | None = None

    def pos(self, index: int) -> int:
        """Position in the ring of the last frame at or before ``index`` (0 if none)."""
        return max(0, bisect.bisect_right(self.ring, index, key=lambda e: e.index) - 1)

    def get(self, index: int) -> Entry | None:
        if not self.ring:
            return None
        pos = index - self.ring[0].index
        if 0 <= pos < len(self.ring) and self.ring[pos].index == index:
            return self.ring[pos]
        for e in self.ring:  # frames with gaps in their index (subsampled sources)
            if e.index == index:
                return e
        return None

    def frame(self, index: int) -> Frame | None:
        for f in self.frames:
            if f.index == index:
                return f
        return None

    def fade_bounds(self, start: int, end: int) -> tuple[int, int]:
        """Widen a fade to where the mean luminance starts falling and stops rising."""
        ring = self.ring
        if start >= ring[0].index:  # (a long black hold may have pushed the start out of the ring)
            i = self.pos(start)
            while i - 1 >= 0 and ring[i - 1].luma > ring[i].luma * 1.02 + 0.3:
                i -= 1
            start = ring[i].index
        j = self.pos(end)
        while j + 1 < len(ring) and ring[j + 1].luma > ring[j].luma * 1.02 + 0.3:
            j += 1
        return start, ring[j].index

    def darkest(self, s_pos: int, e_pos: int, p_pos: int, q_pos: int) -> tuple[int, int] | None:
        """The darkest stretch of ``s_pos..e_pos`` as frame indices when the picture dips there: black
        frames, or a mean luma under :data:`DIP` of both the frame before the run (``p_pos``) and the
        one after it (``q_pos``) — a fade through black, which a mix of two shots never is."""
        ring = self.ring
        span = range(s_pos, e_pos + 1)
        dark = [j for j in span if ring[j].dark]
        if not dark:
            low = min(span, key=lambda j: ring[j].luma)
            if ring[low].luma >= DIP * min(ring[p_pos].luma, ring[q_pos].luma):
                return None
            dark = [low]
        return ring[dark[0]].index, ring[dark[-1]].index

    def dip_step(self, max_transition: int) -> tuple[Dip, int] | None:
        """Watch the newest frame for fades through black by brightness alone (a pan or motion can
        hide a fade from the gradual signal): (the fade, its last frame) once the picture is back
        and has stopped brightening, else None."""
        ring = self.ring
        e = ring[-1]
        if e.dark:
            if self.dip is not None:
                self.dip.last_dark = e.index
            elif len(ring) >= 2 and not ring[-2].dark and self.seen_light:
                start, _ = self.fade_bounds(e.index, e.index)
                p = self.pos(start)
                self.dip = Dip(start, e.index, [ring[j].emb for j in range(max(0, p - 3), p)] or [e.emb])
            return None
        dip = self.dip
        if dip is None or (e.luma > ring[-2].luma * 1.02 + 0.3 and e.index - dip.last_dark <= max_transition):
            return None
        self.dip = None
        return dip, ring[-2].index

    def leave(self, p_pos: int, q_pos: int, pre: list[np.ndarray]) -> int:
        """First frame after ``p_pos`` that no longer looks like the frames before the run."""
        ref = pre[-1]
        tol = self.tolerance()
        for j in range(p_pos + 1, q_pos + 1):
            if dist(ref, self.ring[j].emb) > tol:
                return self.ring[j].index
        return self.ring[q_pos].index

    def arrive(self, p_pos: int, q_pos: int, post: np.ndarray) -> int:
        """Last frame before ``q_pos`` that does not yet look like the frames after the run."""
        tol = self.tolerance()
        for j in range(q_pos - 1, p_pos, -1):
            if dist(post, self.ring[j].emb) > tol:
                return self.ring[j].index
        return self.ring[p_pos + 1].index

    def tolerance(self) -> float:
        med = float(np.median(np.fromiter(self.d1_hist, np.float64))) if self.d1_hist else 0.0
        return max(0.004, 3.0 * med)

    def crossover(self, start: int, end: int, pre: list[np.ndarray], post: np.ndarray) -> int:
        """The frame where the picture is closer to the new scene than to the old one."""
        for i in range(start, end + 1):
            e = self.get(i)
            if e is not None and dist(e.emb, post) <= dist(e.emb, pre[-1]):
                return i
        return end

    def write_thumbs(self, folder: str, start: int, end: int, index: int) -> tuple[str, ...]:
        """JPEGs of the frames before and after the boundary at ``index`` in ``folder``; their paths."""
        out = []
        src = self.source.replace("/", "_")
        for side, i in (("before", start - 1), ("after", max(end, index))):
            e = self.get(i)
            if e is None or e.thumb is None:
                continue
            path = Path(folder) / f"{src}-scene{self.scene_id:04d}-{side}-{i:07d}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(e.thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
            out.append(str(path))
        return tuple(out)


def fading(a: float, b: float, level: float) -> bool:
    """One side nearly black and the brightness changing fast: the dim end of a fade."""
    lo, hi = min(a, b), max(a, b)
    return lo < level and hi > 1.5 * lo + 1.0


def dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - float(np.dot(a, b)))


def label_of(embs: np.ndarray, text_emb: np.ndarray, labels: list[str]) -> str:
    """Argmax cosine similarity between the mean image embedding and each prompt embedding."""
    mean = embs.mean(axis=0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return labels[int(np.argmax(text_emb @ mean))]


def thumb(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= width:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
