"""Cutting a video into one file per scene without re-encoding (``framesift scenes --split --copy``).

The packets are copied as they are, so a file can only start on a keyframe: scene ``k``'s file runs
from the last keyframe at or before its first frame to the packet before the next file's keyframe.
Files partition the video: every packet is written once, none is decoded. Scenes that share a
keyframe interval (a scene shorter than the GOP) share one file, named after the first of them.
The first audio stream is copied too, each packet into the file its time falls in. Much faster than
re-encoding, and lossless; the price is a cut up to one GOP early (PySceneDetect's
``split-video --copy`` and ``ffmpeg -c copy`` behave the same way). A video that cannot be cut this
way is re-encoded instead, with one warning line (see :func:`copy_split`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from framesift.stream.headers import video_packets
from framesift.stream.split import split_scenes

log = logging.getLogger(__name__)

#: Containers a copy keeps; any other input is copied into Matroska, which takes every codec.
KEEP_CONTAINER = {".mp4", ".m4v", ".mov", ".mkv", ".webm"}
#: Audio packets held for a file not yet open; past this (a file whose audio runs far ahead of its
#: video), they go into the current file, or are dropped before the first video packet.
MAX_PENDING = 2048


class CannotCopy(ValueError):
    """The video cannot be cut by copying (no timestamps, no keyframe): re-encode instead."""


def keyframe_cuts(path: Path, starts: Sequence[int]) -> list[tuple[int, list[int]]]:
    """For scenes starting at the frame indices ``starts``: the pts (video time base) of the keyframe
    each file opens on, with the scenes (0-based) that file holds, in order. One demux, no decode."""
    pts, flags = video_packets(str(path))
    keys = pts[flags]
    if not len(keys):
        raise CannotCopy(f"{path.name}: no video packets with timestamps, or no keyframe, to cut at")
    files: list[tuple[int, list[int]]] = []
    for scene, start in enumerate(starts):
        at = pts[min(max(start, 0), len(pts) - 1)]
        key = int(keys[max(0, int(np.searchsorted(keys, at, side="right")) - 1)])
        if scene == 0:
            key = int(keys[0])  # the first file holds everything before the first scene's keyframe too
        if files and files[-1][0] == key:
            files[-1][1].append(scene)
        else:
            files.append((key, [scene]))
    return files


def copy_split(path: Path, starts: Sequence[int], folder: Path, stem: str) -> list[Path]:
    """``<stem>-scene-001.<ext>``... in ``folder``: the scenes starting at frames ``starts`` (0-based,
    in order), cut at keyframes and copied without re-encoding. Written under temporary names first.

    A video that cannot be copied (no timestamps or keyframes to cut at, a codec the output container
    refuses, packets its muxer rejects, timestamps that go backwards) is re-encoded instead
    (:func:`framesift.stream.split.split_scenes`), with one warning line; the copies already made
    and the half-written file are removed first, so the folder holds one kind of file."""
    try:
        return _copy(path, starts, folder, stem)
    except CannotCopy as exc:
        log.warning("%s: re-encoding the scenes instead (H.264, as --split without --copy)", exc)
    ends = [*starts[1:], sys.maxsize]  # scenes are contiguous: each ends where the next starts
    return split_scenes(path, list(zip(starts, ends, strict=True)), folder, stem)


def _copy(path: Path, starts: Sequence[int], folder: Path, stem: str) -> list[Path]:
    """The copy itself; :class:`CannotCopy` when the video cannot be cut this way (nothing is left
    behind then)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = keyframe_cuts(path, starts)
    for _key, scenes in files:
        if len(scenes) > 1:
            log.info(
                "%s: scenes %d-%d lie in one keyframe interval: one file (%s-scene-%03d)",
                path.name, scenes[0] + 1, scenes[-1] + 1, stem, scenes[0] + 1,
            )  # fmt: skip
    ext = path.suffix.lower() if path.suffix.lower() in KEEP_CONTAINER else ".mkv"
    with av.open(str(path)) as src:
        video = src.streams.video[0]
        audio = src.streams.audio[0] if src.streams.audio else None
        vtb = video.time_base or Fraction(1, 90_000)
        cut_times = [float(key * vtb) for key, _ in files]
        writer = _Writer(path.name, folder, stem, ext, video, audio)
        pending: list[Any] = []  # audio packets of a later file, demuxed before its keyframe
        last_dts: int | None = None  # the last video packet's that had one

        def route(packet: Any) -> bool:
            """Write an audio packet into the current file if its time lies before the next cut;
            False: hold it for a later file."""
            t = float((packet.pts or 0) * (packet.time_base or Fraction(1, 90_000)))
            if writer.index < 0:  # before the first video packet: held, or dropped once far ahead
                return len(pending) >= MAX_PENDING
            later = writer.index + 1 < len(cut_times) and t >= cut_times[writer.index + 1]
            if later and len(pending) < MAX_PENDING:
                return False
            writer.write(packet)
            return True

        try:
            for packet in _demux(path.name, src, [s for s in (video, audio) if s is not None]):
                if packet.dts is None and packet.pts is None:
                    continue  # a flush packet
                if packet.stream is not video:
                    if not route(packet):
                        pending.append(packet)
                    continue
                dts = packet.dts  # None on Matroska's first B-frame packets: not compared
                if dts is not None and last_dts is not None and dts < last_dts:
                    # segments joined end to end (cat a.ts b.ts): the cuts, found by time, are lost
                    raise CannotCopy(
                        f"{path.name}: the video's timestamps go back from {float(last_dts * vtb):.3f} s "
                        f"to {float(dts * vtb):.3f} s (joined segments?), so it cannot be cut by copying"
                    )
                last_dts = dts if dts is not None else last_dts
                nxt = writer.index + 1
                switch = nxt < len(files) and packet.is_keyframe and (packet.pts or 0) >= files[nxt][0]
                if writer.index < 0 or switch:
                    writer.open(files[min(nxt, len(files) - 1)][1][0], packet)
                    pending = [held for held in pending if not route(held)]
                writer.write(packet)
            for held in pending:
                writer.write(held)
            writer.close()
        except CannotCopy:
            writer.remove_written()  # the half-written file goes in ``finally``
            raise
        finally:
            writer.abort()
    return writer.written


def _demux(name: str, src: Any, streams: list[Any]) -> Iterator[Any]:
    """``src``'s packets of ``streams``; damaged data the demuxer stops at is :class:`CannotCopy`."""
    try:
        yield from src.demux(*streams)
    except av.FFmpegError as exc:
        raise CannotCopy(f"{name}: the packets cannot be read for copying ({exc})") from exc


class _Writer:
    """The output file being written: its streams, and each stream's offset so it starts at zero."""

    def __init__(self, name: str, folder: Path, stem: str, ext: str, video: Any, audio: Any) -> None:
        self.name = name  # the input's, for messages
        self.folder, self.stem, self.ext = folder, stem, ext
        self.video, self.audio = video, audio
        self.index = -1
        self.out: Any = None
        self.tmp: Path | None = None
        self.final: Path | None = None
        self.streams: dict[Any, Any] = {}
        self.offset: dict[Any, int] = {}
        self.start_s = 0.0
        self.written: list[Path] = []

    def open(self, scene: int, first: Any) -> None:
        """Close the current file and open scene ``scene``'s, starting at the video packet ``first``."""
        self.close()
        self.index += 1
        self.final = self.folder / f"{self.stem}-scene-{scene + 1:03d}{self.ext}"
        self.tmp = self.final.with_name(self.final.stem + ".tmp" + self.ext)
        self.out = av.open(str(self.tmp), mode="w")
        try:
            self.streams = {s: self._add_stream(s) for s in (self.video, self.audio) if s is not None}
        except ValueError as exc:  # "'matroska' format does not support 'gif' codec"
            raise CannotCopy(f"{self.name}: {self._kind()} cannot hold its {self._codecs()}") from exc
        tb = first.time_base or Fraction(1, 90_000)
        start = first.dts if first.dts is not None else first.pts
        self.start_s = float(start * tb)
        self.offset = {}

    def write(self, packet: Any) -> None:
        if self.out is None:
            return
        tb = packet.time_base or Fraction(1, 90_000)
        if packet.stream not in self.offset:
            self.offset[packet.stream] = round(self.start_s / tb)
        off = self.offset[packet.stream]
        if packet.pts is not None:
            packet.pts -= off
        if packet.dts is not None:
            packet.dts -= off
        if (packet.dts is not None and packet.dts < 0) or (packet.pts is not None and packet.pts < 0):
            return  # audio from just before the cut: the file starts at its keyframe
        packet.stream = self.streams[packet.stream]
        try:
            self.out.mux(packet)
        except av.FFmpegError as exc:  # a codec the muxer takes but not in this form (raw RGBA...)
            raise CannotCopy(
                f"{self.name}: {self._kind()} refuses its {self._codecs()} packets ({exc.strerror})"
            ) from exc

    def close(self) -> None:
        if self.out is None:
            return
        try:
            self.out.close()
        except av.FFmpegError as exc:
            raise CannotCopy(f"{self.name}: {self._kind()} cannot finish its file ({exc.strerror})") from exc
        self.out = None
        assert self.tmp is not None and self.final is not None
        os.replace(self.tmp, self.final)
        self.written.append(self.final)

    def _add_stream(self, template: Any) -> Any:
        """An output stream copying ``template``'s. A video read by a decoder whose name no encoder has
        (AV1 read by libdav1d) is added by the decoder's codec, which names the same format."""
        try:
            return self.out.add_stream_from_template(template)
        except av.codec.codec.UnknownCodecError:
            return self.out.add_stream_from_template(template, opaque=True)

    def _kind(self) -> str:
        """The output container's name, for messages ("Matroska", "MP4 ...")."""
        fmt = self.out.format if self.out is not None else None
        return str(fmt.long_name or fmt.name) if fmt is not None else self.ext

    def _codecs(self) -> str:
        """The copied streams' codecs, for messages ("gif video", "h264 video and aac audio")."""
        kinds = [f"{s.codec.canonical_name} {s.type}" for s in (self.video, self.audio) if s is not None]
        return " and ".join(kinds)

    def abort(self) -> None:
        """After an error: the half-written file is removed (the finished ones stay)."""
        if self.out is not None:
            out, self.out = self.out, None
            with contextlib.suppress(av.FFmpegError):  # the muxer failed on it: removed below anyway
                out.close()
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)

    def remove_written(self) -> None:
        """The finished files removed too: the scenes are written again by re-encoding."""
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written = []
