"""Colour conversion and resize of decoded NV12 surfaces with torch ops (GPU or CPU tensors).

NVDEC hands out NV12 (or P010/P016 for 10/12-bit, NV16/P216 for 4:2:2, planar YUV444): a full-size
luma plane ``Y (H, W)`` and a chroma plane ``UV (H/2, W/2, 2)`` (4:2:0; full height for 4:2:2, full
size for 4:4:4). :func:`nv12_to_rgb` turns it into ``(H, W, 3)`` uint8 RGB on whatever device the
tensors live on, with the same maths as FFmpeg's unscaled yuv420p → rgb24 path (chroma sample
replicated over its 2x2 block, limited or full range, BT.601 / BT.709 / BT.2020 matrices), so a GPU
frame equals its CPU-decoded twin within codec tolerance. Importing this module imports torch.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F

Matrix = Literal["bt601", "bt709", "bt2020"]

#: (Kr, Kb) luma coefficients of each matrix.
_COEFFS: dict[str, tuple[float, float]] = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020": (0.2627, 0.0593),
}

#: FFmpeg colour-space names (``VideoFrame.colorspace`` / ``AVColorSpace``) → matrix.
_FFMPEG_SPACES: dict[str, Matrix] = {
    "bt709": "bt709",
    "bt470bg": "bt601",
    "smpte170m": "bt601",
    "fcc": "bt601",
    "smpte240m": "bt601",
    "bt2020nc": "bt2020",
    "bt2020_ncl": "bt2020",
    "bt2020c": "bt2020",
    "bt2020_cl": "bt2020",
}

#: ``AVColorSpace`` numbers (PyAV 18 returns ints): 1 BT.709, 5/6 BT.601, 9/10 BT.2020.
_FFMPEG_NUMBERS: dict[int, Matrix] = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}


def matrix_for(colorspace: str | int | None) -> Matrix:
    """The matrix for an FFmpeg colour space; unknown or unspecified → BT.601, as swscale does."""
    if colorspace is None:
        return "bt601"
    name = getattr(colorspace, "name", colorspace)
    if isinstance(name, int):  # AVColorSpace numbers: 1 bt709, 9/10 bt2020
        return _FFMPEG_NUMBERS.get(name, "bt601")
    return _FFMPEG_SPACES.get(str(name).lower(), "bt601")


def yuv_to_rgb_matrix(
    matrix: Matrix = "bt601", full_range: bool = False
) -> tuple[torch.Tensor, float, float]:
    """``(M, y_offset, y_scale)``: ``rgb = M @ [y', cb, cr]`` with ``y' = (Y - y_offset) * y_scale``."""
    kr, kb = _COEFFS[matrix]
    kg = 1.0 - kr - kb
    c_scale = 1.0 if full_range else 255.0 / 224.0
    m = torch.tensor(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr) * c_scale],
            [1.0, -2.0 * kb * (1.0 - kb) / kg * c_scale, -2.0 * kr * (1.0 - kr) / kg * c_scale],
            [1.0, 2.0 * (1.0 - kb) * c_scale, 0.0],
        ],
        dtype=torch.float32,
    )
    if full_range:
        return m, 0.0, 1.0
    return m, 16.0, 255.0 / 219.0


@functools.lru_cache(maxsize=32)
def _chroma_weights(matrix: Matrix, full_range: bool, device: torch.device) -> torch.Tensor:
    """The (2, 3) chroma part of the matrix, transposed, uploaded once per device (no per-frame copy)."""
    m, _, _ = yuv_to_rgb_matrix(matrix, full_range)
    return m[:, 1:].T.contiguous().to(device)


def _levels(x: torch.Tensor) -> torch.Tensor:
    """Samples as float on the 8-bit scale: uint8 as is; 16-bit containers (P010/P016: the value in
    the high bits, as NVDEC and FFmpeg store it) divided by 256, so 10-bit limited range 64..940
    becomes 16..235 and the 8-bit maths applies unchanged."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32)
    if x.dtype == torch.int16:  # a 16-bit container read as signed: undo the wrap
        return x.to(torch.int32).bitwise_and_(0xFFFF).to(torch.float32) / 256.0
    return x.to(torch.int32).to(torch.float32) / 256.0  # uint16 (DLPack kDLUInt 16)


def _upsample_chroma(c: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Chroma ``(ch, cw, 2)`` → ``(h, w, 2)``: each sample replicated over the block it covers
    (nearest, like swscale's unscaled path): 2x2 for 4:2:0, 1x2 for 4:2:2, 1x1 for 4:4:4. A plane
    one short of ``ceil(h / 2)`` (PyAV exports NV12/P010 chroma as ``h // 2 x w // 2`` for odd
    sizes) repeats its last row/column for the frame's outermost row/column."""
    ch, cw = int(c.shape[0]), int(c.shape[1])
    sy = 1 if ch >= h else 2
    sx = 1 if cw >= w else 2
    if sy > 1 and ch * 2 < h:
        c = torch.cat([c, c[-1:].expand(-(-h // 2) - ch, c.shape[1], c.shape[2])], dim=0)
    if sx > 1 and cw * 2 < w:
        c = torch.cat([c, c[:, -1:].expand(c.shape[0], -(-w // 2) - cw, c.shape[2])], dim=1)
    if sy > 1:
        c = c.repeat_interleave(2, dim=0)
    if sx > 1:
        c = c.repeat_interleave(2, dim=1)
    return c[:h, :w]


def nv12_to_rgb(
    y: torch.Tensor, uv: torch.Tensor, *, matrix: Matrix = "bt601", full_range: bool = False
) -> torch.Tensor:
    """Luma + interleaved chroma planes → ``(H, W, 3)`` uint8 RGB on the planes' device.

    ``y`` is ``(H, W)``, ``uv`` is ``(CH, CW, 2)`` (Cb, Cr interleaved): NV12/P010/P016 (4:2:0,
    ``CH = ceil(H/2)``, or ``H // 2`` as PyAV exports odd sizes), NV16/P216 (4:2:2, ``CH = H``) or
    4:4:4 (planes stacked by :func:`planar_chroma`). uint8 or 16-bit samples (high-bit aligned);
    strided views (pitched surfaces) are fine.
    """
    if y.dim() != 2 or uv.dim() != 3 or uv.shape[-1] != 2:
        raise ValueError(
            f"expected Y (H, W) and UV (H/2, W/2, 2), got {tuple(y.shape)} and {tuple(uv.shape)}"
        )
    h, w = y.shape
    y_off, y_scale = (0.0, 1.0) if full_range else (16.0, 255.0 / 219.0)
    yf = (_levels(y) - y_off) * y_scale
    c = _upsample_chroma(_levels(uv) - 128.0, h, w)
    rgb = yf.unsqueeze(-1) + c @ _chroma_weights(matrix, full_range, y.device)  # (H, W, 3)
    return rgb.round_().clamp_(0, 255).to(torch.uint8)


def planar_chroma(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Separate Cb and Cr planes (YUV444 surfaces) as one ``(H, W, 2)`` interleaved chroma tensor."""
    return torch.stack([u, v], dim=-1)


def nv12_split(surface: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split one ``(H * 3/2, W)`` NV12 surface (PyNvVideoCodec's DLPack layout) into Y and UV views."""
    y = surface[:height, :width]
    uv = surface[height : height + (height + 1) // 2, : 2 * ((width + 1) // 2)]
    return y, uv.reshape(uv.shape[0], uv.shape[1] // 2, 2)


#: NVDEC surface layouts by PyNvVideoCodec ``Pixel_Format`` name: surface rows per luma row
#: (numerator, denominator) and how the chroma is stored.
SURFACE_LAYOUTS: dict[str, tuple[int, int, str]] = {
    "NV12": (3, 2, "semi420"),
    "P010": (3, 2, "semi420"),
    "P016": (3, 2, "semi420"),
    "NV16": (2, 1, "semi422"),
    "P216": (2, 1, "semi422"),
    "YUV444": (3, 1, "planar444"),
    "YUV444_16BIT": (3, 1, "planar444"),
}


def split_surface(surface: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Y and interleaved chroma of one decoded surface of format ``fmt`` (a ``Pixel_Format`` name:
    NV12, P016, NV16, P216, YUV444, YUV444_16Bit; ``Pixel_Format.P016`` works too). The frame size
    is read from the surface ``(rows, W)``: rows = 3H/2 for 4:2:0, 2H for 4:2:2, 3H for 4:4:4."""
    key = fmt.rsplit(".", 1)[-1].upper()
    if key not in SURFACE_LAYOUTS:
        raise ValueError(f"unsupported NVDEC surface format {fmt!r} (known: {', '.join(SURFACE_LAYOUTS)})")
    num, den, kind = SURFACE_LAYOUTS[key]
    rows, width = int(surface.shape[0]), int(surface.shape[1])
    height = rows * den // num
    if kind == "semi420":
        return nv12_split(surface, height, width)
    y = surface[:height]
    if kind == "semi422":
        c = surface[height : 2 * height, : 2 * (width // 2)]
        return y, c.reshape(height, width // 2, 2)
    return y, planar_chroma(surface[height : 2 * height], surface[2 * height : 3 * height])


def resize_hwc(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize an ``(H, W, C)`` or ``(H, W)`` uint8 image (bilinear, antialiased when shrinking)."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    gray = image.dim() == 2
    x = image.unsqueeze(-1) if gray else image
    x = x.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    shrink = height < image.shape[0] or width < image.shape[1]
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    out = x.squeeze(0).permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).contiguous()
    return out[..., 0] if gray else out


def nv12_to_image(
    y: torch.Tensor,
    uv: torch.Tensor,
    *,
    pixel_format: str = "rgb24",
    size: tuple[int, int] | None = None,
    matrix: Matrix = "bt601",
    full_range: bool = False,
) -> torch.Tensor:
    """NV12 → the source's configured output: ``rgb24``/``bgr24`` ``(H, W, 3)`` or ``gray`` ``(H, W)``
    (the luma plane, range-expanded like FFmpeg's gray output), resized to ``size = (W, H)``."""
    if pixel_format == "gray":
        if full_range and y.dtype == torch.uint8:
            img = y.clone(memory_format=torch.contiguous_format)  # never a view of the decoder's surface
        else:
            _, y_off, y_scale = yuv_to_rgb_matrix(matrix, full_range)
            img = ((_levels(y) - y_off) * y_scale).round_().clamp_(0, 255).to(torch.uint8)
    else:
        img = nv12_to_rgb(y, uv, matrix=matrix, full_range=full_range)
        if pixel_format == "bgr24":
            img = img.flip(-1)
    if size is not None:
        img = resize_hwc(img, size[0], size[1])
    return img.contiguous()
