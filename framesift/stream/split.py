"""Cutting a video into one re-encoded file per scene, decoding it once (``framesift scenes --split``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import av.error
import numpy as np
from av.video.stream import VideoStream

from framesift.stream.orient import quarter_turns
from framesift.stream.pyav_source import PyAVSource
from framesift.stream.sources.file import FileSourceConfig

log = logging.getLogger(__name__)

AUDIO_CODEC = "aac"
AUDIO_BIT_RATE = 192_000


def split_scenes(
    path: Path,
    bounds: Sequence[tuple[int, int]],
    folder: Path,
    stem: str,
    *,
    crf: int = 18,
    preset: str = "veryfast",
    audio: bool = True,
) -> list[Path]:
    """``<stem>-scene-001.mp4``... in ``folder``, one H.264 file per ``(start, end)`` frame range.

    Frames are numbered as the scene detector numbered them (the same decoder, skipping the same
    corrupt packets); each file keeps its frames' timestamps (variable rates stay variable), starting
    at zero. The first audio stream (``audio``) is cut at the same times, to the sample, and
    re-encoded to AAC. Files are written under a temporary name first. An odd width or height loses
    its last column or row (:func:`even_size`); frames smaller than 2x2 cannot be encoded: one
    warning, and no file is written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    src = PyAVSource(FileSourceConfig(path=str(path)), stem)
    src.open()
    sound = AudioCutter.open(path) if audio else None
    written: list[Path] = []
    out: av.container.OutputContainer | None = None
    ostream: VideoStream | None = None
    astream: Any = None
    tmp: Path | None = None
    cur, first_pts = -1, 0
    rate = Fraction(src.stream_info.fps or 25).limit_denominator(1001)
    try:
        for index, frame in src.video_frames():
            if out is None and 0 in even_size(frame.width, frame.height):
                log.warning(
                    "%s: frames of %dx%d are too small to encode as H.264 (2x2 at least): its scenes "
                    "are not split into files (the scene list and the other outputs are written)",
                    path.name, frame.width, frame.height,
                )  # fmt: skip
                return written
            scene = _scene_of(bounds, index, cur)
            tb = frame.time_base or Fraction(1, 90_000)
            # a raw stream (.h264) has no timestamps: the frame's place at the stream's rate
            pts = frame.pts if frame.pts is not None else round(index / rate / tb)
            t = float(pts * tb)
            if scene != cur or out is None:
                if out is not None and ostream is not None and tmp is not None:
                    if sound is not None and astream is not None:
                        sound.write(out, astream, until=t)
                    _finish(out, [ostream, astream], tmp, written)
                cur = scene
                final = folder / f"{stem}-scene-{scene + 1:03d}.mp4"
                tmp = final.with_name(final.stem + ".tmp.mp4")
                out = av.open(str(tmp), mode="w")
                ostream = cast(VideoStream, out.add_stream("libx264", rate=rate))
                ostream.width, ostream.height = even_size(frame.width, frame.height)
                ostream.pix_fmt = "yuv420p"
                ostream.codec_context.time_base = tb
                ostream.options = {"crf": str(crf), "preset": preset}
                if turns := quarter_turns(frame):  # shown as the source is: upright
                    ostream.set_display_rotation(turns * 90)
                astream = sound.start(out, t) if sound is not None else None
                first_pts = pts
            assert out is not None and ostream is not None
            if sound is not None and astream is not None:
                sound.write(out, astream, until=t)  # interleaved as it goes: nothing piles up
            vf = fit_frame(frame, ostream.width, ostream.height)
            vf.pts = pts - first_pts
            vf.time_base = tb
            for packet in ostream.encode(vf):
                out.mux(packet)
        if out is not None and ostream is not None and tmp is not None:
            if sound is not None and astream is not None:
                sound.write(out, astream, until=None)
            _finish(out, [ostream, astream], tmp, written)
            out = None
    finally:
        src.close()
        if sound is not None:
            sound.close()
        if out is not None:
            out.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    return written


class AudioCutter:
    """The first audio stream of a file, decoded in one pass and cut at given times to the sample:
    each scene file gets the samples from its first frame's time to the next scene's."""

    def __init__(self, container: Any, stream: Any) -> None:
        self.container = container
        self.rate = int(stream.rate or stream.sample_rate or 48_000)
        channels = max(1, min(2, int(getattr(stream.layout, "nb_channels", 2) or 2)))
        self.layout = "stereo" if channels == 2 else "mono"
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self.chunks = self._chunks(stream)
        self.pending: tuple[float, np.ndarray] | None = None  # (start time, samples [channels, n])
        self.start_t = 0.0
        self.written = 0

    @classmethod
    def open(cls, path: Path) -> AudioCutter | None:
        """The cutter of ``path``'s first audio stream; None when it has none (or it cannot be read)."""
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, OSError):
            return None
        if not container.streams.audio:
            container.close()
            return None
        return cls(container, container.streams.audio[0])

    def _chunks(self, stream: Any) -> Iterator[tuple[float, np.ndarray]]:
        """``(start time in seconds, fltp samples)`` in order; undecodable packets are skipped."""
        try:
            for packet in self.container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue  # a damaged audio packet: a gap, the video goes on
                for frame in frames:
                    if frame.pts is None or frame.time_base is None:
                        continue
                    t = float(frame.pts * frame.time_base)
                    for out in self.resampler.resample(frame):
                        yield t, out.to_ndarray()
                        t += out.samples / self.rate
        except av.error.FFmpegError as exc:
            log.warning("audio: stopped reading at damaged data (%s); the rest of the split is silent", exc)

    def start(self, out: Any, t: float) -> Any:
        """A new AAC stream in ``out`` whose time zero is ``t`` (the scene's first frame)."""
        stream = out.add_stream(AUDIO_CODEC, rate=self.rate, layout=self.layout)
        stream.bit_rate = AUDIO_BIT_RATE
        self.start_t, self.written = t, 0
        return stream

    def write(self, out: Any, stream: Any, until: float | None) -> None:
        """Encode the samples before ``until`` (None: all that are left) into ``stream``."""
        while True:
            if self.pending is None:
                self.pending = next(self.chunks, None)
                if self.pending is None:
                    return
            t0, samples = self.pending
            n = samples.shape[1]
            end = n if until is None else max(0, min(n, round((until - t0) * self.rate)))
            skip = max(0, min(end, round((self.start_t - t0) * self.rate)))  # before this scene
            if end > skip:
                self._encode(out, stream, samples[:, skip:end], t0 + skip / self.rate)
            if end < n:
                self.pending = (t0 + end / self.rate, samples[:, end:])
                return
            self.pending = None

    def _encode(self, out: Any, stream: Any, samples: np.ndarray, t: float) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self.layout)
        frame.sample_rate = self.rate
        # the first samples of a scene start at its own offset (audio that begins late stays in sync)
        frame.pts = max(self.written, round((t - self.start_t) * self.rate))
        frame.time_base = Fraction(1, self.rate)
        self.written = frame.pts + samples.shape[1]
        for packet in stream.encode(frame):
            out.mux(packet)

    def close(self) -> None:
        self.container.close()


def even_size(width: int, height: int) -> tuple[int, int]:
    """The frame size an H.264 (4:2:0) file is written at: each side rounded down to even, the odd
    last column or row cropped (scene files here, and the annotated video of
    :mod:`framesift.sinks.video`). A side of 1 pixel gives 0: too small to encode."""
    return width - width % 2, height - height % 2


def fit_frame(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """``frame`` as a yuv420p picture of ``width`` x ``height``: an odd last column or row cropped off
    (:func:`even_size`); a frame whose size changed mid-stream is scaled to the file's size."""
    vf = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
    if (vf.width, vf.height) == (width, height):
        return vf
    if even_size(vf.width, vf.height) != (width, height):
        return vf.reformat(width=width, height=height)
    out = av.VideoFrame(width, height, "yuv420p")
    for src, dst in zip(vf.planes, out.planes, strict=True):  # Y, U, V: copied row by row, cropped
        rows = np.frombuffer(memoryview(src), np.uint8).reshape(src.height, src.line_size)
        into = np.frombuffer(memoryview(dst), np.uint8).reshape(dst.height, dst.line_size)
        into[:, : dst.width] = rows[: dst.height, : dst.width]
    out.color_range = vf.color_range
    out.colorspace = vf.colorspace
    return out


def _scene_of(bounds: Sequence[tuple[int, int]], index: int, hint: int) -> int:
    if 0 <= hint < len(bounds) and bounds[hint][0] <= index < bounds[hint][1]:
        return hint
    for i, (a, b) in enumerate(bounds):
        if a <= index < b:
            return i
    return len(bounds) - 1


def _finish(
    out: av.container.OutputContainer, streams: Sequence[Any], tmp: Path, written: list[Path]
) -> None:
    for stream in streams:
        if stream is not None:
            for packet in stream.encode(None):
                out.mux(packet)
    out.close()
    final = tmp.with_name(tmp.name.replace(".tmp.mp4", ".mp4"))
    os.replace(tmp, final)
    written.append(final)
