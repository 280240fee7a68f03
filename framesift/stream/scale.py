"""Cheap downscaling of decoded 4:2:0 frames to small RGB analysis frames (the ``fast`` scaler).

The planes are read in place, shrunk by an integer factor (rows sampled, columns averaged) and
converted to RGB in one call at the small size: a tenth of swscale's cost for 1280x720 → 256x144,
and a third for a frame already near the size (converted as it is).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import cv2
import numpy as np
from av.video.frame import VideoFrame

from framesift.stream.orient import TURN_FILTERS

log = logging.getLogger(__name__)


def _plane(vf: VideoFrame, i: int, width: int, height: int) -> np.ndarray:
    pl = vf.planes[i]
    return np.frombuffer(memoryview(pl), np.uint8).reshape(-1, pl.line_size)[:height, :width]


def _shrink(plane: np.ndarray, k: int, width: int, height: int) -> np.ndarray:
    """Every ``k``-th row, then columns area-averaged to ``width``; ``height`` rows."""
    rows = plane[::k][:height]
    if rows.shape[1] == width:
        return rows
    return cv2.resize(rows, (width, rows.shape[0]), interpolation=cv2.INTER_AREA)


def fast_size(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int]:
    """What :func:`small_rgb` makes of a ``width`` x ``height`` frame asked for ``target_w`` x
    ``target_h``: the largest integer-factor shrink that stays at least that big (even sides)."""
    k = max(1, min(width // max(1, target_w), height // max(1, target_h)))
    return (width // k) & ~1, (height // k) & ~1


def small_rgb(vf: VideoFrame, width: int, height: int) -> np.ndarray:
    """``vf`` shrunk by an integer factor to at least ``width`` x ``height`` (see :func:`fast_size`),
    as RGB. Frames that are not 4:2:0 (or have odd sides) go through swscale to the exact size."""
    fw, fh = vf.width, vf.height
    if vf.format.name not in ("yuv420p", "yuvj420p") or fw % 2 or fh % 2:
        return vf.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
    return cv2.cvtColor(_i420(vf, width, height), cv2.COLOR_YUV2RGB_I420)


def _i420(vf: VideoFrame, width: int, height: int) -> np.ndarray:
    """The planes of a 4:2:0 ``vf`` shrunk as :func:`fast_size` says, as one I420 buffer."""
    fw, fh = vf.width, vf.height
    ow, oh = fast_size(fw, fh, width, height)
    k = max(1, min(fw // max(1, width), fh // max(1, height)))
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


#: Per (width, height): whether OpenCV converts (see opencv_pays); rgb24 and bgr24 share the answer.
_PAYS: dict[tuple[int, int], bool] = {}
SWSCALE_MARGIN = 0.9  # swscale converts only when it takes under this share of OpenCV's time


def opencv_pays(vf: VideoFrame, pixel_format: str = "rgb24") -> bool:
    """Whether :func:`full_rgb` converts frames like ``vf`` here, rather than swscale.

    Which is cheaper depends on the CPU and the FFmpeg build: at 1280x720 swscale took several
    times OpenCV's time on some CPUs, and half of single-threaded OpenCV's on an AVX-512 EPYC.
    With OpenCV single-threaded (the thread plan's choice on small machines) the two are raced once
    per frame size, on ``vf`` itself (5 rounds each, this thread's CPU time, a few milliseconds),
    and swscale wins only by a clear margin (:data:`SWSCALE_MARGIN`), so the choice does not flip
    between runs on a close call. With OpenCV's thread pool, whose work this thread's clock would
    not see, OpenCV converts (the pool is there because cores are spare)."""
    key = (vf.width, vf.height)
    hit = _PAYS.get(key)
    if hit is None:
        hit = cv2.getNumThreads() > 1 or _race(vf, pixel_format)
        if len(_PAYS) >= 32:  # a few sizes per process; never grows without bound
            _PAYS.clear()
        _PAYS[key] = hit
        log.info("%dx%d frames: RGB conversion by %s", vf.width, vf.height, "OpenCV" if hit else "swscale")
    return hit


def _race(vf: VideoFrame, pixel_format: str) -> bool:
    if full_rgb(vf, pixel_format) is None:  # not a frame OpenCV converts: swscale it is
        return False
    best_cv = best_sws = float("inf")
    for _ in range(5):
        t0 = time.thread_time()
        full_rgb(vf, pixel_format)
        t1 = time.thread_time()
        vf.to_ndarray(format=pixel_format)
        t2 = time.thread_time()
        best_cv, best_sws = min(best_cv, t1 - t0), min(best_sws, t2 - t1)
    return best_sws >= SWSCALE_MARGIN * best_cv


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
