"""Generated video clips with known content, for tests, benchmarks and the offline demo.

Each frame carries its index as a barcode in a top strip (16 black/white blocks), so any consumer
can check that frames arrive complete and in order. Segments are visually distinct scenes (a
seeded background of coloured shapes plus a moving disc), so the frame where a segment starts is
a known hard cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.stream import VideoStream

BARCODE_BITS = 16
BARCODE_HEIGHT = 16

CODECS = {"h264": "libx264", "hevc": "libx265", "mjpeg": "mjpeg", "mpeg4": "mpeg4", "vp9": "libvpx-vp9"}


@dataclass(frozen=True)
class ClipInfo:
    """What was written: path, frame count, rate, and the first frame of every segment after the first."""

    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    codec: str
    cuts: tuple[int, ...] = ()
    keyframes: tuple[int, ...] = field(default=())


def scene_background(seed: int, width: int, height: int) -> np.ndarray:
    """A distinct, deterministic RGB scene: a colour gradient plus random rectangles."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    img = (c0 * (1 - t) + c1 * t).astype(np.float32) * np.ones((height, 1, 1), np.float32)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        w, h = int(rng.integers(width // 8, width // 2)), int(rng.integers(height // 8, height // 2))
        img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    return img.clip(0, 255).astype(np.uint8)


def stamp_barcode(img: np.ndarray, index: int) -> None:
    """Write ``index`` (mod 2**16) as 16 black/white blocks across the top strip, in place."""
    w = img.shape[1]
    bw = w // BARCODE_BITS
    for bit in range(BARCODE_BITS):
        on = (index >> (BARCODE_BITS - 1 - bit)) & 1
        img[:BARCODE_HEIGHT, bit * bw : (bit + 1) * bw] = 255 if on else 0


def read_barcode(img: np.ndarray) -> int:
    """Read back the index stamped by :func:`stamp_barcode` (RGB, BGR or grey; any codec)."""
    w = img.shape[1]
    bw = w // BARCODE_BITS
    strip = img[2 : BARCODE_HEIGHT - 2].astype(np.float32)
    if strip.ndim == 3:
        strip = strip.mean(axis=2)
    value = 0
    for bit in range(BARCODE_BITS):
        block = strip[:, bit * bw + 2 : (bit + 1) * bw - 2]
        value = (value << 1) | int(block.mean() > 127)
    return value


def render_frame(index: int, segment: int, local: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Frame ``index``: scene of ``segment`` with a disc moved ``local`` steps, barcode on top."""
    img = scene_background(seed * 1000 + segment, width, height).copy()
    r = max(4, min(width, height) // 10)
    cx = int((width // 4 + local * 3) % (width - 2 * r)) + r
    cy = height // 2 + int((height // 4) * np.sin(local / 8.0))
    yy, xx = np.ogrid[:height, :width]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = (255, 255, 255)
    stamp_barcode(img, index)
    return img


def write_clip(
    path: str | Path,
    *,
    segments: Sequence[int] = (50,),
    fps: int | Fraction = 25,
    width: int = 320,
    height: int = 240,
    codec: str = "h264",
    gop: int | None = None,
    seed: int = 0,
    container: str | None = None,
    bit_rate: int | None = None,
) -> ClipInfo:
    """Encode a clip of ``sum(segments)`` frames; a hard cut at the start of every segment but the first.

    ``gop`` sets the keyframe interval (default: FFmpeg's); the frames the encoder made keyframes are
    reported in :attr:`ClipInfo.keyframes` as read back from the packets.
    """
    path = Path(path)
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    rate = Fraction(fps)
    out = av.open(str(path), mode="w", format=container)
    try:
        stream = cast(VideoStream, out.add_stream(CODECS[codec], rate=rate))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if bit_rate:
            stream.bit_rate = bit_rate
        opts: dict[str, object] = {}
        if codec == "h264":
            opts = {"preset": "ultrafast", "tune": "zerolatency", "crf": "18"}
        elif codec == "hevc":
            opts = {"preset": "ultrafast", "x265-params": "log-level=error"}
        if gop is not None:
            stream.codec_context.gop_size = gop
            if codec == "h264":
                opts["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
            elif codec == "hevc":
                opts["x265-params"] = f"log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0"
        stream.options = opts
        index, cuts = 0, []
        for seg, n in enumerate(segments):
            if seg > 0:
                cuts.append(index)
            for local in range(n):
                img = render_frame(index, seg, local, width, height, seed)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = index
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    out.mux(packet)
                index += 1
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()
    return ClipInfo(path, index, rate, width, height, codec, tuple(cuts), tuple(_keyframes(path)))


def write_vfr_clip(
    path: str | Path,
    *,
    spans: Sequence[tuple[int, int]] = ((25, 50), (10, 40)),
    cut: int = 60,
    width: int = 192,
    height: int = 144,
) -> tuple[int, float]:
    """A clip whose frame rate changes mid-file: ``spans`` of ``(fps, frames)`` one after the other,
    H.264 in Matroska (millisecond timestamps), with one hard cut at frame ``cut``. Returns the frame
    count and the cut's time in seconds."""
    path = Path(path)
    out = av.open(str(path), mode="w", format="matroska")
    cut_time = 0.0
    try:
        stream = cast(VideoStream, out.add_stream("libx264", rate=spans[0][0]))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "crf": "18", "x264-params": "scenecut=0"}
        index, t = 0, Fraction(0)
        for fps, n in spans:
            for _ in range(n):
                seg = int(index >= cut)
                if index == cut:
                    cut_time = float(t)
                img = render_frame(index, seg, index - cut * seg, width, height)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = round(t * 1000)
                frame.time_base = Fraction(1, 1000)
                for packet in stream.encode(frame):
                    out.mux(packet)
                index += 1
                t += Fraction(1, fps)
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()
    return index, cut_time


def _keyframes(path: Path) -> list[int]:
    """Indices (in presentation order) of the frames stored as keyframes."""
    from framesift.stream.headers import keyframe_indices

    return keyframe_indices(str(path))


def demo_clip(directory: str | Path) -> ClipInfo:
    """The offline demo clip (generated at first use): 12 s, 640x360, 25 fps, 4 scenes."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "framesift-demo.mp4"
    segs = (75, 100, 50, 75)
    if path.exists():
        from framesift.stream.headers import stored_frames

        n = stored_frames(str(path))
        if n == sum(segs):
            return ClipInfo(path, n, Fraction(25), 640, 360, "h264", (75, 175, 225))
    tmp = path.with_suffix(".tmp.mp4")
    info = write_clip(tmp, segments=segs, fps=25, width=640, height=360, gop=25)
    tmp.replace(path)
    return ClipInfo(path, info.frames, info.fps, 640, 360, "h264", info.cuts, info.keyframes)
