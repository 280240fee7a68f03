"""The weight-free pixel embedder: shape, normalisation, and what it is (in)sensitive to."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from framesift.engines.base import Embedder
from framesift.engines.models.pixel import PixelEmbedder
from framesift.frame import Frame
from framesift.samples_scenes import PanShot, PeopleShot, StaticShot


def _shot(shot, i: int = 0, w: int = 320, h: int = 240) -> np.ndarray:
    shot.setup(w, h)
    return np.clip(shot.render(i), 0, 255).astype(np.uint8)


def _d(e: PixelEmbedder, a: np.ndarray, b: np.ndarray) -> float:
    v = e.embed_images([a, b])
    return float(1.0 - v[0] @ v[1])


def test_contract_shape_dtype_norm() -> None:
    e = PixelEmbedder()
    assert isinstance(e, Embedder) and e.name == "pixel" and not e.supports_text
    imgs = [_shot(StaticShot(1)), _shot(PeopleShot(2), w=1920, h=1080), np.zeros((90, 160, 3), np.uint8)]
    frame = Frame("s", 0, 0, Fraction(1, 25), 0.0, imgs[0].copy())
    out = e.embed_images([*imgs, frame, imgs[0][:, :, 0]])
    assert out.shape == (5, e.dim) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], out[3], atol=1e-6)  # a Frame embeds like its image
    assert e.embed_images([]).shape == (0, e.dim)


def test_batch_equals_single() -> None:
    e = PixelEmbedder()
    imgs = [_shot(StaticShot(s)) for s in range(4)]
    batch = e.embed_images(imgs)
    for img, row in zip(imgs, batch, strict=True):
        np.testing.assert_allclose(e.embed_images([img])[0], row, atol=1e-6)


def test_cut_is_far_lighting_noise_motion_are_near() -> None:
    e = PixelEmbedder()
    a, b = _shot(StaticShot(1)), _shot(StaticShot(2))
    rng = np.random.default_rng(0)
    brighter = np.clip(a.astype(np.float32) * 1.4, 0, 255).astype(np.uint8)
    darker = (a.astype(np.float32) * 0.6).astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8)
    pan = PanShot(3, speed=2.0)
    p0, p1 = _shot(pan, 0), _shot(pan, 1)
    walkers = PeopleShot(4)
    w0, w1 = _shot(walkers, 0), _shot(walkers, 1)
    cut = _d(e, a, b)
    assert cut > 0.3
    for name, x, y in (
        ("brighter", a, brighter),
        ("darker", a, darker),
        ("noise", a, noisy),
        ("pan step", p0, p1),
        ("walkers step", w0, w1),
    ):
        assert _d(e, x, y) < 0.05, name
        assert _d(e, x, y) < cut / 6, name


def test_black_frames_are_finite_and_close_to_each_other() -> None:
    e = PixelEmbedder()
    black = np.zeros((240, 320, 3), np.uint8)
    rng = np.random.default_rng(1)
    noisy_black = np.clip(rng.normal(2, 2, black.shape), 0, 255).astype(np.uint8)
    v = e.embed_images([black, noisy_black])
    assert np.all(np.isfinite(v))
    assert float(1 - v[0] @ v[1]) < 0.1


@pytest.mark.parametrize("size", [(1080, 1920), (720, 1280), (17, 31)])
def test_any_size(size: tuple[int, int]) -> None:
    img = np.random.default_rng(2).integers(0, 256, (*size, 3), dtype=np.uint8)
    v = PixelEmbedder().embed_images([img])
    assert v.shape == (1, PixelEmbedder().dim)


def test_the_scene_signals_embedding_is_reused_only_with_the_same_weights() -> None:
    from framesift.analyzers.scene_signal import signal_batch
    from framesift.engines.models.pixel import EMB_KEY

    imgs = [_shot(StaticShot(s), w=1280, h=720) for s in range(3)]
    frames = [Frame("s", i, i, Fraction(1, 25), 0.0, img) for i, img in enumerate(imgs)]
    e = PixelEmbedder()
    embs, darks = signal_batch(e, frames, 20.0)
    fresh = PixelEmbedder().embed_images(imgs)  # arrays: nothing cached to reuse
    np.testing.assert_allclose(embs, fresh, atol=1e-6)
    assert all(d is not None and not d[0] for d in darks)
    # the cached vector is what a same-weights embedder returns, without embedding again
    planted = frames[1].meta[EMB_KEY][1].copy()
    frames[1].meta[EMB_KEY] = (e.signature, np.full(e.dim, 0.5, np.float32))
    assert np.all(PixelEmbedder().embed_images(frames)[1] == 0.5)
    # other weights never take it: they embed the frame (from its cached 32x18 grid)
    other = PixelEmbedder({"hist": 1.0, "luma": 0.0, "edge": 0.0})
    assert not np.all(other.embed_images(frames)[1] == 0.5)
    frames[1].meta[EMB_KEY] = (e.signature, planted)
    np.testing.assert_allclose(PixelEmbedder().embed_images(frames), fresh, atol=1e-6)


@pytest.mark.parametrize("height", [90, 144, 180, 270, 540, 720])
def test_the_grid_sees_the_whole_frame(height: int) -> None:
    """The 32x18 grid reads rows from the whole picture: a change in its bottom tenth shows in the
    grid's last row at every height (every k-th row trimmed to 72 saw only the top 80 % of 180 or
    270 rows)."""
    emb = PixelEmbedder()
    img = np.zeros((height, height * 16 // 9, 3), np.uint8)
    img[height - height // 10 :] = 200
    grid = emb.small(img)
    assert grid.shape == (18, 32, 3)
    assert grid[-1].mean() > 100 and grid[0].mean() == 0
