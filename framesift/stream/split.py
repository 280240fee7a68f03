"""Cutting a video into one re-encoded file per scene, decoding it once (``framesift scenes --split``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from av.video.stream import VideoStream

from framesift.stream.orient import quarter_turns
from framesift.stream.pyav_source import PyAVSource
from framesift.stream.sources.file import FileSourceConfig


def split_scenes(
    path: Path,
    bounds: Sequence[tuple[int, int]],
    folder: Path,
    stem: str,
    *,
    crf: int = 18,
    preset: str = "veryfast",
) -> list[Path]:
    """``<stem>-scene-001.mp4``... in ``folder``, one H.264 file per ``(start, end)`` frame range.

    Frames are numbered as the scene detector numbered them (the same decoder, skipping the same
    corrupt packets); each file keeps its frames' timestamps (variable rates stay variable), starting
    at zero. Video only: audio is not carried over. Files are written under a temporary name first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    src = PyAVSource(FileSourceConfig(path=str(path)), stem)
    src.open()
    written: list[Path] = []
    out: av.container.OutputContainer | None = None
    ostream: VideoStream | None = None
    tmp: Path | None = None
    cur, first_pts = -1, 0
    rate = Fraction(src.stream_info.fps or 25).limit_denominator(1001)
    try:
        for index, frame in enumerate(src.video_frames()):
            scene = _scene_of(bounds, index, cur)
            if scene != cur or out is None:
                if out is not None and ostream is not None and tmp is not None:
                    _finish(out, ostream, tmp, written)
                cur = scene
                final = folder / f"{stem}-scene-{scene + 1:03d}.mp4"
                tmp = final.with_name(final.stem + ".tmp.mp4")
                out = av.open(str(tmp), mode="w")
                ostream = cast(VideoStream, out.add_stream("libx264", rate=rate))
                ostream.width, ostream.height = frame.width, frame.height
                ostream.pix_fmt = "yuv420p"
                ostream.codec_context.time_base = frame.time_base or Fraction(1, 90_000)
                ostream.options = {"crf": str(crf), "preset": preset}
                if turns := quarter_turns(frame):  # shown as the source is: upright
                    ostream.set_display_rotation(turns * 90)
                first_pts = frame.pts or 0
            assert out is not None and ostream is not None
            vf = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
            vf.pts = (frame.pts or 0) - first_pts
            vf.time_base = frame.time_base
            for packet in ostream.encode(vf):
                out.mux(packet)
        if out is not None and ostream is not None and tmp is not None:
            _finish(out, ostream, tmp, written)
            out = None
    finally:
        src.close()
        if out is not None:
            out.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    return written


def _scene_of(bounds: Sequence[tuple[int, int]], index: int, hint: int) -> int:
    if 0 <= hint < len(bounds) and bounds[hint][0] <= index < bounds[hint][1]:
        return hint
    for i, (a, b) in enumerate(bounds):
        if a <= index < b:
            return i
    return len(bounds) - 1


def _finish(out: av.container.OutputContainer, ostream: VideoStream, tmp: Path, written: list[Path]) -> None:
    for packet in ostream.encode(None):
        out.mux(packet)
    out.close()
    final = tmp.with_name(tmp.name.replace(".tmp.mp4", ".mp4"))
    os.replace(tmp, final)
    written.append(final)
