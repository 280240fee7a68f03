"""The GPU colour path on every surface NVDEC hands out (8/10-bit 4:2:0, 4:2:2, 4:4:4, odd sizes),
run on CPU tensors against FFmpeg's own conversion of the same real frame.

The planes are taken the way the GPU path takes them: PyAV's DLPack export (the same code path as
for CUDA frames, which exports NV12/P010 chroma as ``h // 2 x w // 2``), or an NVDEC-layout surface.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from framesift.stream.gpu_color import nv12_to_image, nv12_to_rgb, split_surface

MAX_DIFF = 4
MEAN_DIFF = 1.6  # 16-bit surfaces round once more than 8-bit ones


def _picture(h: int, w: int) -> np.ndarray:
    """A smooth real-looking RGB picture (gradients and a disc): chroma varies everywhere."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(xx / 7.0)
    g = 128 + 100 * np.cos(yy / 5.0)
    b = np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2, 230.0, 30.0)
    return np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)


def _frame(h: int, w: int, fmt: str) -> tuple[av.VideoFrame, np.ndarray]:
    """The picture in ``fmt`` (4:2:0 ones made losslessly from a yuv420p frame) and FFmpeg's RGB of
    it (for 4:2:0 from yuv420p: swscale's unscaled path, which replicates chroma as NVDEC users do)."""
    src = av.VideoFrame.from_ndarray(_picture(h, w), format="rgb24")
    if fmt in ("nv12", "p010le"):
        base = src.reformat(format="yuv420p")
        return base.reformat(format=fmt), base.to_ndarray(format="rgb24")
    f = src.reformat(format=fmt)
    return f, f.to_ndarray(format="rgb24")


def _diff(a: torch.Tensor, b: np.ndarray) -> np.ndarray:
    assert tuple(a.shape) == b.shape and a.dtype == torch.uint8
    return np.abs(a.numpy().astype(np.int16) - b.astype(np.int16))


def _dlpack_planes(f: av.VideoFrame) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.utils.dlpack.from_dlpack(f.planes[0].__dlpack__()),
        torch.utils.dlpack.from_dlpack(f.planes[1].__dlpack__()),
    )


def _full_planes(f: av.VideoFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """The yuv420p frame's planes with all their chroma (``ceil(h/2) x ceil(w/2)``)."""
    pl = [np.frombuffer(bytes(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in f.planes]
    return torch.from_numpy(pl[0].copy()), torch.from_numpy(np.stack([pl[1], pl[2]], -1).copy())


@pytest.mark.parametrize(("h", "w"), [(64, 96), (62, 94)])
def test_full_chroma_planes_convert_like_ffmpeg(h: int, w: int) -> None:
    """The reference: where swscale takes its unscaled path (even heights) it agrees with ours."""
    base = av.VideoFrame.from_ndarray(_picture(h, w), format="rgb24").reformat(format="yuv420p")
    d = _diff(nv12_to_rgb(*_full_planes(base)), base.to_ndarray(format="rgb24"))
    assert d.max() <= MAX_DIFF and d.mean() <= MEAN_DIFF, (d.max(), d.mean())


@pytest.mark.parametrize("fmt", ["nv12", "p010le"])
@pytest.mark.parametrize(("h", "w"), [(64, 96), (63, 95), (61, 64), (64, 61)])
def test_pyav_dlpack_planes_convert_like_full_planes(fmt: str, h: int, w: int) -> None:
    """PyAV's own plane export (odd sizes: chroma h//2 x w//2; P010: uint16, high bits) gives the
    full-chroma result: exactly, except the outermost row/column of an odd size, whose chroma PyAV
    leaves out and which is filled from its neighbour."""
    base = av.VideoFrame.from_ndarray(_picture(h, w), format="rgb24").reformat(format="yuv420p")
    y, uv = _dlpack_planes(base.reformat(format=fmt))
    assert tuple(y.shape) == (h, w) and tuple(uv.shape) == (h // 2, w // 2, 2)
    want = nv12_to_rgb(*_full_planes(base)).numpy()
    d = _diff(nv12_to_rgb(y, uv), want)
    inner = d[: h - (h % 2), : w - (w % 2)]
    assert inner.max() == 0, inner.max()
    assert d.max() <= 24, d.max()


def test_ten_bit_keeps_its_precision() -> None:
    """P010 samples are not truncated to 8 bits before the matrix: the result equals the 8-bit
    conversion of the same picture within rounding, and differs from a truncated read."""
    f10 = av.VideoFrame.from_ndarray(_picture(32, 48), format="rgb24").reformat(format="p010le")
    y, uv = _dlpack_planes(f10)
    assert y.dtype in (torch.uint16, torch.int16)
    gray = nv12_to_image(y, uv, pixel_format="gray")
    want = f10.to_ndarray(format="gray")
    assert np.abs(gray.numpy().astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("ffmpeg_fmt", "nvdec_fmt"),
    [
        ("nv12", "NV12"),
        ("p010le", "P016"),
        ("nv16", "NV16"),
        ("yuv444p", "YUV444"),
        ("yuv444p16le", "YUV444_16Bit"),
    ],
)
def test_nvdec_surface_layouts_convert_like_ffmpeg(ffmpeg_fmt: str, nvdec_fmt: str) -> None:
    """PyNvVideoCodec's surfaces are one tensor (planes stacked by rows): the size comes from it."""
    h, w = 48, 80
    f, want = _frame(h, w, ffmpeg_fmt)
    planes = [np.frombuffer(bytes(p), dtype=np.uint8) for p in f.planes]
    wide = np.uint16 if ffmpeg_fmt in ("p010le", "yuv444p16le") else np.uint8
    rows = []
    for p, arr in zip(f.planes, planes, strict=True):
        a = arr.view(wide).reshape(p.height, p.line_size // np.dtype(wide).itemsize)
        rows.append(a[:, :w])
    surface = torch.from_numpy(np.ascontiguousarray(np.concatenate(rows, 0)).astype(wide))
    y, uv = split_surface(surface, f"Pixel_Format.{nvdec_fmt}")
    assert tuple(y.shape) == (h, w)
    d = _diff(nv12_to_rgb(y, uv), want)
    assert d.max() <= MAX_DIFF and d.mean() <= MEAN_DIFF, (d.max(), d.mean())


def test_unknown_surface_format_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported NVDEC surface format 'RGB'"):
        split_surface(torch.zeros(6, 4, dtype=torch.uint8), "RGB")
