"""NV12 → RGB on torch (the GPU path's maths, run here on CPU tensors) against FFmpeg's own conversion."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from framesift.samples import ClipInfo
from framesift.stream.gpu_color import (
    matrix_for,
    nv12_split,
    nv12_to_image,
    nv12_to_rgb,
    resize_hwc,
)

#: FFmpeg's fixed-point yuv→rgb differs from the exact maths by a level or two; codecs by far more.
MAX_DIFF = 4
MEAN_DIFF = 1.5


def _frames(path: str | Path, n: int = 3) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f)
            if len(out) == n:
                break
        return out


def _planes(f: av.VideoFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame as the NV12 planes NVDEC hands out (interleaving yuv420p's chroma is lossless)."""
    return nv12_split(torch.from_numpy(f.to_ndarray(format="nv12")), f.height, f.width)


def _diff(a: torch.Tensor | np.ndarray, b: np.ndarray) -> np.ndarray:
    arr = a.numpy() if isinstance(a, torch.Tensor) else a
    assert arr.shape == b.shape and arr.dtype == np.uint8
    return np.abs(arr.astype(np.int16) - b.astype(np.int16))


@pytest.fixture
def clip(make_clip: Callable[..., ClipInfo]) -> ClipInfo:
    return make_clip("c.mp4", segments=(4, 4), width=320, height=240)


@pytest.mark.parametrize("pixel_format", ["rgb24", "bgr24"])
def test_nv12_to_rgb_equals_ffmpeg_on_real_frames(clip: ClipInfo, pixel_format: str) -> None:
    for f in _frames(clip.path, 8):
        assert f.format.name == "yuv420p" and matrix_for(f.colorspace) == "bt601"
        y, uv = _planes(f)
        d = _diff(nv12_to_image(y, uv, pixel_format=pixel_format), f.to_ndarray(format=pixel_format))
        assert d.max() <= MAX_DIFF and d.mean() <= MEAN_DIFF, (d.max(), d.mean())


def test_gray_is_ffmpegs_range_expanded_luma(clip: ClipInfo) -> None:
    for f in _frames(clip.path):
        y, uv = _planes(f)
        assert _diff(nv12_to_image(y, uv, pixel_format="gray"), f.to_ndarray(format="gray")).max() <= 1


def test_bt709_tagged_stream_uses_the_bt709_matrix(clip: ClipInfo, tmp_path: Path) -> None:
    tagged = tmp_path / "bt709.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(clip.path), "-c:v", "libx264", "-colorspace", "bt709",
         "-color_primaries", "bt709", "-color_trc", "bt709", str(tagged)],
        check=True,
        timeout=60,
    )  # fmt: skip
    f = _frames(tagged, 1)[0]
    matrix = matrix_for(f.colorspace)
    assert matrix == "bt709"
    y, uv = _planes(f)
    ref = f.to_ndarray(format="rgb24")
    d = _diff(nv12_to_rgb(y, uv, matrix=matrix), ref)
    assert d.max() <= MAX_DIFF and d.mean() <= MEAN_DIFF
    assert _diff(nv12_to_rgb(y, uv, matrix="bt601"), ref).mean() > 2 * d.mean()  # the matrix matters


def test_resize_on_torch_is_close_to_ffmpegs_scaler(clip: ClipInfo) -> None:
    f = _frames(clip.path, 1)[0]
    y, uv = _planes(f)
    out = nv12_to_image(y, uv, size=(160, 120))
    assert tuple(out.shape) == (120, 160, 3)
    d = _diff(out, f.to_ndarray(format="rgb24", width=160, height=120))
    assert d.mean() <= 4.0  # different (both sensible) filters: bilinear+antialias vs bicubic
    up = nv12_to_image(y, uv, size=(480, 360), pixel_format="gray")
    assert tuple(up.shape) == (360, 480)


@pytest.mark.parametrize(
    ("matrix", "yuv", "rgb"),
    [
        # limited-range reference colours (ITU-R BT.601 / BT.709 tables)
        ("bt601", (235, 128, 128), (255, 255, 255)),
        ("bt601", (16, 128, 128), (0, 0, 0)),
        ("bt601", (81, 90, 240), (255, 0, 0)),
        ("bt601", (145, 54, 34), (0, 255, 0)),
        ("bt601", (41, 240, 110), (0, 0, 255)),
        ("bt709", (63, 102, 240), (255, 0, 0)),
        ("bt709", (173, 42, 26), (0, 255, 0)),
        ("bt709", (32, 240, 118), (0, 0, 255)),
        ("bt709", (126, 128, 128), (128, 128, 128)),
    ],
)
def test_reference_colours(matrix: str, yuv: tuple[int, int, int], rgb: tuple[int, int, int]) -> None:
    y = torch.full((4, 6), yuv[0], dtype=torch.uint8)
    uv = torch.tensor([yuv[1], yuv[2]], dtype=torch.uint8).expand(2, 3, 2)
    out = nv12_to_rgb(y, uv, matrix=matrix)  # type: ignore[arg-type]
    assert out.shape == (4, 6, 3)
    assert (out.to(torch.int16) - torch.tensor(rgb, dtype=torch.int16)).abs().max() <= 3


def test_full_range_passes_luma_through() -> None:
    y = torch.arange(256, dtype=torch.uint8).reshape(16, 16)
    uv = torch.full((8, 8, 2), 128, dtype=torch.uint8)
    out = nv12_to_rgb(y, uv, full_range=True)
    assert torch.equal(out[..., 0], y) and torch.equal(out[..., 1], y) and torch.equal(out[..., 2], y)
    assert torch.equal(nv12_to_image(y, uv, pixel_format="gray", full_range=True), y)


def test_pitched_surface_split_and_odd_sizes() -> None:
    """NVDEC surfaces are pitched (rows padded): views over them convert like packed planes."""
    h, w, pitch = 6, 10, 16
    surface = torch.randint(0, 256, (h + h // 2, pitch), dtype=torch.uint8)
    y, uv = nv12_split(surface, h, w)
    assert tuple(y.shape) == (h, w) and tuple(uv.shape) == (h // 2, w // 2, 2)
    packed = nv12_to_rgb(y.contiguous(), uv.contiguous())
    assert torch.equal(nv12_to_rgb(y, uv), packed)
    # odd sizes: chroma is ceil(h/2) x ceil(w/2)
    odd = nv12_to_rgb(torch.zeros(5, 7, dtype=torch.uint8), torch.full((3, 4, 2), 128, dtype=torch.uint8))
    assert tuple(odd.shape) == (5, 7, 3)
    with pytest.raises(ValueError, match="expected Y"):
        nv12_to_rgb(torch.zeros(4, 4, dtype=torch.uint8), torch.zeros(2, 2, dtype=torch.uint8))


def test_resize_keeps_identity_and_gray() -> None:
    img = torch.randint(0, 256, (8, 8, 3), dtype=torch.uint8)
    assert resize_hwc(img, 8, 8) is img
    assert tuple(resize_hwc(img[..., 0], 4, 2).shape) == (2, 4)


def test_matrix_for() -> None:
    assert matrix_for(None) == "bt601" and matrix_for(2) == "bt601"  # unspecified: like swscale
    assert matrix_for(1) == "bt709" and matrix_for("bt709") == "bt709"
    assert matrix_for("smpte170m") == "bt601" and matrix_for(9) == "bt2020"


@pytest.mark.parametrize("pixel_format", ["rgb24", "bgr24", "gray"])
@pytest.mark.parametrize("full_range", [False, True])
def test_output_never_aliases_the_decoder_surface(pixel_format: str, full_range: bool) -> None:
    """Decoder surfaces go back to the decoder's pool: a Frame must own its pixels."""
    surface = torch.randint(0, 256, (12, 8), dtype=torch.uint8)
    y, uv = nv12_split(surface, 8, 8)
    out = nv12_to_image(y, uv, pixel_format=pixel_format, full_range=full_range)
    before = out.clone()
    surface.zero_()
    assert torch.equal(out, before)
    assert out.is_contiguous()
