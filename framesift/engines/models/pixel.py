"""The weight-free ``pixel`` embedder: a cheap, lighting-robust image signature.

Each image is shrunk once with ``cv2.resize(INTER_AREA)`` to a 32x18 grid; everything after that is
vectorised numpy over the batch. The vector concatenates three unit-norm blocks:

* a hue x saturation histogram (Hellinger form, so cosine similarity is the Bhattacharyya
  coefficient); value is left out, so a global brightness change barely moves it;
* a 16x9 luminance layout, mean- and contrast-normalised (cosine similarity = correlation), so
  brightness and contrast steps cancel while a new shot decorrelates;
* an 8x6 edge-magnitude layout, also mean/contrast-normalised.

Hard cuts give a large cosine distance (typically 0.3-1.0); lighting steps, sensor noise and small
motion give a small one (typically < 0.05). Near-flat images (black frames, fades) shrink the layout
blocks rather than amplifying noise. About 0.3 ms per 1080p frame on one CPU core (see ``bench/scenes.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from framesift.engines.base import Embedder, ImageLike, as_images
from framesift.frame import Frame

GRID_W, GRID_H = 32, 18
GRID_KEY = "pixel_grid"  # Frame.meta key of a frame's 32x18 grid, left there by the scene signal
EMB_KEY = "pixel_embedding"  # Frame.meta key of (weights, vector): the scene signal's embedding of it
HUE_BINS = 16
SAT_LEVELS = 2  # saturated pixels: mid / high saturation, times hue bin
GREY_SAT = 40  # pixels below this saturation (0..255) fall in one "grey" bin, hue ignored
DARK_VALUE = 16  # pixels whose brightest channel is below this count as grey
LUMA_W, LUMA_H = 16, 9
ROWS = GRID_H * 4  # rows of a frame read for its grid (see PixelEmbedder.small)
EDGE_W, EDGE_H = 8, 6
# Minimum per-cell standard deviation (grey levels) credited to a layout: flatter images give a
# proportionally shorter block, so noise on a black frame is not blown up to a full-size signal.
LAYOUT_FLOOR = 4.0
WEIGHTS = {"hist": 0.4, "luma": 0.4, "edge": 0.2}
N_HIST = HUE_BINS * SAT_LEVELS + 1
DIM = N_HIST + LUMA_W * LUMA_H + EDGE_W * EDGE_H  # 225


def _layout(x: np.ndarray, floor: float) -> np.ndarray:
    """(N, D) → mean-removed rows, clipped at ±2 standard deviations (so a few high-contrast cells,
    such as an on-screen counter, cannot dominate), scaled by 1/max(norm, floor·sqrt(D))."""
    x = x - x.mean(axis=1, keepdims=True)
    sd = np.sqrt((x * x).mean(axis=1, keepdims=True))
    x = np.clip(x, -2.0 * sd, 2.0 * sd)
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, floor * np.sqrt(x.shape[1]))


class PixelEmbedder(Embedder):
    """Colour histogram + normalised luminance and edge layouts; no weights, CPU only."""

    name = "pixel"
    dim = DIM
    supports_text = False

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        w = dict(WEIGHTS, **(weights or {}))
        self._w = {k: float(np.sqrt(max(v, 0.0))) for k, v in w.items()}
        self.n_hist = N_HIST
        self.signature = tuple(sorted(self._w.items()))  # equal signatures embed equally

    @property
    def model_id(self) -> str:
        """``pixel``: a weight-free signature, the same on every machine."""
        return self.name

    @property
    def layout_slice(self) -> slice:
        """Where the 16x9 luminance layout sits in the vector."""
        return slice(self.n_hist, self.n_hist + LUMA_W * LUMA_H)

    def changed_area(self, a: np.ndarray, b: np.ndarray) -> float:
        """Fraction of the 16x9 luminance grid that differs between two embeddings by more than half a
        typical cell (after brightness/contrast normalisation): ~0.5-0.9 for a cut, < 0.1 when only a
        small region (a counter, a logo, a person) changed."""
        sl = self.layout_slice
        scale = self._w["luma"] if self._w["luma"] > 0 else 1.0
        d = np.abs(a[..., sl] - b[..., sl]) / scale
        return float(np.mean(d > 0.5 / np.sqrt(LUMA_W * LUMA_H)))

    def small(self, image: np.ndarray) -> np.ndarray:
        """The 32x18 RGB grid this embedder works on (one INTER_AREA resize)."""
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        h, w = image.shape[:2]
        if h == GRID_H and w == GRID_W:
            return image
        # 4 rows per grid cell, one from the middle of each of 72 equal bands of the picture (less
        # memory read; INTER_AREA takes its integer-factor path where the width allows): each cell
        # averages 4 rows and all of its columns. Every k-th row trimmed to 72 saw only the top
        # 80 % of a 180- or 270-row frame.
        rows = image if h <= ROWS else image[(np.arange(1, 2 * ROWS, 2) * h) // (2 * ROWS)]
        return cv2.resize(rows, (GRID_W, GRID_H), interpolation=cv2.INTER_AREA)

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """Embeddings of frames or arrays. A frame the scene signal already embedded with the same
        weights (its ``meta``) is not embedded again, and one whose 32x18 grid is there is not
        shrunk again."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out: list[np.ndarray | None] = [self.cached(it) for it in images]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            rest = [images[i] for i in todo]
            small = np.stack(
                [
                    grid
                    if isinstance(it, Frame) and (grid := it.meta.get(GRID_KEY)) is not None
                    else self.small(np.asarray(img))
                    for it, img in zip(rest, as_images(rest), strict=True)
                ]
            )  # (N, 18, 32, 3) uint8
            for i, v in zip(todo, self.embed_small(small), strict=True):
                out[i] = v
        return np.stack(out)  # type: ignore[arg-type]  # every None was filled

    def cached(self, item: ImageLike) -> np.ndarray | None:
        """The embedding the scene signal left in a frame's ``meta``, if made with these weights."""
        hit = item.meta.get(EMB_KEY) if isinstance(item, Frame) else None
        return hit[1] if hit is not None and hit[0] == self.signature else None

    def embed_small(self, small: np.ndarray) -> np.ndarray:
        """Embed a batch already shrunk to (N, 18, 32, 3) uint8 RGB."""
        n = small.shape[0]
        rgb = small.astype(np.float32)
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        # channel-wise maximum/minimum, not .max(axis=3): numpy reduces a 3-long axis ~15x slower
        mx = np.maximum(np.maximum(r, g), b)
        mn = np.minimum(np.minimum(r, g), b)
        chroma = mx - mn
        sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0) * 255.0
        safe = np.maximum(chroma, 1e-6)
        hue = np.where(
            mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
        )
        hbin = np.clip((hue / 6.0 * HUE_BINS).astype(np.int32), 0, HUE_BINS - 1)
        slev = np.clip(
            ((sat - GREY_SAT) / ((255.0 - GREY_SAT) / SAT_LEVELS)).astype(np.int32), 0, SAT_LEVELS - 1
        )
        # Near-black pixels have no reliable hue: they count as grey with the unsaturated ones.
        bins = np.where((sat < GREY_SAT) | (mx < DARK_VALUE), self.n_hist - 1, hbin * SAT_LEVELS + slev)
        offs = (np.arange(n, dtype=np.int32) * self.n_hist)[:, None, None]
        hist = np.bincount((bins + offs).ravel(), minlength=n * self.n_hist).reshape(n, self.n_hist)
        hist = np.sqrt(hist / float(GRID_W * GRID_H)).astype(np.float32)

        luma = 0.299 * r + 0.587 * g + 0.114 * b  # (N, 18, 32)
        lay = luma.reshape(n, LUMA_H, 2, LUMA_W, 2).mean(axis=(2, 4)).reshape(n, -1)
        lay = _layout(lay, LAYOUT_FLOOR)

        gx = np.zeros_like(luma)
        gy = np.zeros_like(luma)
        gx[:, :, 1:-1] = luma[:, :, 2:] - luma[:, :, :-2]
        gy[:, 1:-1, :] = luma[:, 2:, :] - luma[:, :-2, :]
        mag = np.sqrt(gx * gx + gy * gy)
        edge = mag.reshape(n, EDGE_H, GRID_H // EDGE_H, EDGE_W, GRID_W // EDGE_W).mean(axis=(2, 4))
        edge = _layout(edge.reshape(n, -1), LAYOUT_FLOOR)

        out = np.concatenate(
            [self._w["hist"] * hist, self._w["luma"] * lay, self._w["edge"] * edge], axis=1
        ).astype(np.float32)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
