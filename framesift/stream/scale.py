"""Cheap downscaling of decoded 4:2:0 frames to small RGB analysis frames (the ``fast`` scaler).

The planes are read in place, shrunk by a power of two (2x2 averages, halving until the next would
go under the size asked for) and converted to RGB in one call at the small size: 1280x720 asked
for 256 wide gives 320x180 in about half swscale's time for the full-size RGB frame alone.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from av.video.frame import VideoFrame

from framesift.stream.orient import TURN_FILTERS


def _plane(vf: VideoFrame, i: int, width: int, height: int) -> np.ndarray:
    pl = vf.planes[i]
    return np.frombuffer(memoryview(pl), np.uint8).reshape(-1, pl.line_size)[:height, :width]


def _shrink(plane: np.ndarray, k: int, width: int, height: int) -> np.ndarray:
    """The top-left ``width*k`` x ``height*k`` of ``plane`` averaged over ``k`` x ``k`` blocks (``k``
    a power of two) by halvings, each OpenCV's vectorised 2x2 average: every row and column
    counts, so fine detail does not alias into the analysis signal as when rows were sampled.
    Shrinks of 16x and more average every ``k/4``-th row and column over 4x4 blocks instead."""
    step = k // 4 if k >= 16 else 1  # tiny frames (TransNetV2's path): 16 samples a block suffice
    out = plane[: height * k : step, : width * k : step]
    if step > 1:
        out, k = np.ascontiguousarray(out), k // step
    while k > 1:
        out = cv2.resize(out, (out.shape[1] // 2, out.shape[0] // 2), interpolation=cv2.INTER_AREA)
        k //= 2
    return out


def _factor(width: int, height: int, target_w: int, target_h: int) -> int:
    """The largest power of two that shrinks ``width`` x ``height`` to at least the target."""
    k = max(1, min(width // max(1, target_w), height // max(1, target_h)))
    return 1 << (k.bit_length() - 1)


def fast_size(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int]:
    """What :func:`small_rgb` makes of a ``width`` x ``height`` frame asked for ``target_w`` x
    ``target_h``: the largest power-of-two shrink that stays at least that big (even sides; 1280x720
    asked for 256x144 gives 320x180)."""
    k = _factor(width, height, target_w, target_h)
    return (width // k) & ~1, (height // k) & ~1


def small_rgb(vf: VideoFrame, width: int, height: int) -> np.ndarray:
    """``vf`` shrunk by a power of two to at least ``width`` x ``height`` (see :func:`fast_size`),
    as RGB. Frames that are not 4:2:0 (or have odd sides) go through swscale to the exact size."""
    fw, fh = vf.width, vf.height
    if vf.format.name not in ("yuv420p", "yuvj420p") or fw % 2 or fh % 2:
        return vf.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
    return cv2.cvtColor(_i420(vf, width, height), cv2.COLOR_YUV2RGB_I420)


def _i420(vf: VideoFrame, width: int, height: int) -> np.ndarray:
    """The planes of a 4:2:0 ``vf`` shrunk as :func:`fast_size` says, as one I420 buffer."""
    fw, fh = vf.width, vf.height
    ow, oh = fast_size(fw, fh, width, height)
    k = _factor(fw, fh, width, height)
    buf = np.empty((oh * 3 // 2, ow), np.uint8)  # I420: Y, then U and V, each a quarter of Y
    buf[:oh] = _shrink(_plane(vf, 0, fw, fh), k, ow, oh)
    quarter = (oh // 2) * (ow // 2)
    for i, start in ((1, oh * ow), (2, oh * ow + quarter)):
        chroma = _shrink(_plane(vf, i, fw // 2, fh // 2), k, ow // 2, oh // 2)
        buf.reshape(-1)[start : start + quarter] = chroma.reshape(-1)
    return buf


#: Colour spaces OpenCV's I420 conversion matches (BT.601, as swscale reads an unspecified one) and
#: the limited range it assumes, as ``VideoFrame.colorspace`` / ``color_range`` number them.
_BT601 = frozenset({2, 5, 6})  # unspecified, BT470BG, SMPTE170M
_LIMITED = frozenset({0, 1})  # unspecified, MPEG (limited)
_I420_TO = {"rgb24": cv2.COLOR_YUV2RGB_I420, "bgr24": cv2.COLOR_YUV2BGR_I420}


def full_rgb(vf: VideoFrame, pixel_format: str = "rgb24") -> np.ndarray | None:
    """``vf`` as ``rgb24`` or ``bgr24`` at its own size in one OpenCV call (at 1280x720 about an
    eighth of swscale's cost), where that gives swscale's colours within rounding (3 levels): 8-bit
    4:2:0, even sides, BT.601 or unspecified, limited range. None otherwise (use swscale)."""
    code = _I420_TO.get(pixel_format)
    if (
        code is None
        or vf.format.name != "yuv420p"
        or vf.width % 2
        or vf.height % 2
        or vf.colorspace not in _BT601
        or vf.color_range not in _LIMITED
    ):
        return None
    return cv2.cvtColor(_i420(vf, vf.width, vf.height), code)


class ShotScaler:
    """Decoded frames → 48x27 RGB exactly as ``ffmpeg -i VIDEO -s 48x27 -pix_fmt rgb24`` makes them
    (the command line's rotation by the display matrix, FFmpeg's ``scale`` filter with its default
    ``flags=bicubic``, then ``rgb24``): TransNetV2's input, bit-identical to the frames its reference
    implementation reads through an ffmpeg pipe. One filter graph, rebuilt when the input's size,
    pixel format or rotation changes."""

    def __init__(self, width: int = 48, height: int = 27) -> None:
        self.size = (width, height)
        self._graph: Any = None
        self._key: tuple[int, int, str, int] | None = None
        self._src: Any = None
        self._sink: Any = None

    def _build(self, vf: VideoFrame, turns: int) -> None:
        import av.filter

        g = av.filter.Graph()
        src = g.add_buffer(width=vf.width, height=vf.height, format=vf.format, time_base=vf.time_base)
        chain = [g.add(name, args) for name, args in TURN_FILTERS.get(turns, ())]
        chain += [g.add("scale", f"{self.size[0]}:{self.size[1]}:flags=bicubic"), g.add("format", "rgb24")]
        sink = g.add("buffersink")
        for a, b in zip([src, *chain], [*chain, sink], strict=True):
            a.link_to(b)
        g.configure()
        self._graph, self._src, self._sink = g, src, sink
        self._key = (vf.width, vf.height, vf.format.name, turns)

    def __call__(self, vf: VideoFrame, turns: int = 0) -> np.ndarray:
        """``vf`` as 48x27 RGB, first turned by ``turns`` counter-clockwise quarter turns."""
        if self._key != (vf.width, vf.height, vf.format.name, turns):
            self._build(vf, turns)
        self._src.push(vf)
        out: np.ndarray = self._sink.pull().to_ndarray()
        return out
