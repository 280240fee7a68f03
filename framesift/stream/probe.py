"""``probe``: what a file or stream holds (container, codec, size, rate, duration, keyframe interval)."""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from typing import Any

import av
import av.error

from framesift.errors import SourceError
from framesift.log import redact, register_url_secrets
from framesift.stream._errors import (
    check_local_file,
    is_url,
    open_error,
    unsupported_codec_error,
    video_stream,
)
from framesift.stream.headers import turns

#: Packets read to measure the keyframe interval of a file (all of a small file).
MAX_FILE_PACKETS = 20_000


def _source_type(url_or_path: str) -> str:
    if url_or_path.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    return "http" if url_or_path.startswith(("http://", "https://")) else "file"


def _decoder(requested: str, name: str, url_or_path: str, codec: str | None) -> str:
    """``"<decoder> (<reason>)"`` as :func:`framesift.gpu.select_decoder` resolves it for this input."""
    from framesift.gpu import select_decoder

    try:
        choice = select_decoder(requested, source_type=_source_type(url_or_path), codec=codec)
    except SourceError as exc:
        raise SourceError(f"{name}: {exc}") from None
    return f"{choice.name} ({choice.reason})"


def _local_path(url_or_path: str) -> str | None:
    """The local path FFmpeg would open for ``url_or_path`` (a plain path, or ``file:`` + path as
    FFmpeg's file protocol reads it), else None."""
    if url_or_path.startswith("file:"):
        return url_or_path[len("file:") :]
    return None if is_url(url_or_path) else url_or_path


class _Packets:
    """Packets counted so far: keyframe positions, count, bytes."""

    def __init__(self) -> None:
        self.key_pos: list[int] = []
        self.pts: list[int] = []  # bounded by the packets a probe reads (max_packets)
        self.time_base: Any = None
        self.n = 0
        self.size = 0

    def add(self, packet: av.Packet) -> None:
        if packet.is_keyframe:
            self.key_pos.append(self.n)
        if packet.pts is not None and packet.time_base is not None:
            self.pts.append(packet.pts)
            self.time_base = packet.time_base
        self.n += 1
        self.size += packet.size

    def intervals_ms(self) -> dict[str, Any] | None:
        """Time between frames from the packets' timestamps (presentation order): mean, min, max in
        ms and ``variable`` where they differ by more than the time base's rounding (two ticks) and
        5 % of the median: a variable frame rate (phones, screen captures) or frames dropped while
        recording, which the header's single ``fps`` does not show."""
        stamps = sorted(set(self.pts))
        if len(stamps) < 3 or self.time_base is None:
            return None
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        tick_ms = float(self.time_base) * 1000
        lo, hi = min(gaps) * tick_ms, max(gaps) * tick_ms
        med = statistics.median(gaps) * tick_ms
        return {
            "mean": round((stamps[-1] - stamps[0]) * tick_ms / len(gaps), 3),
            "min": round(lo, 3),
            "max": round(hi, 3),
            "variable": hi - lo > max(2 * tick_ms, 0.05 * med),
        }


def _describe(
    container: av.container.InputContainer, name: str, url_or_path: str, decoder: str, live: bool
) -> tuple[dict[str, Any], Any, float | None]:
    """``(info, video stream, duration)`` from the opened container's header."""
    s = video_stream(name, container)
    cc = s.codec_context
    codec = getattr(cc, "name", None) or "unknown"
    if cc is None or codec == "none" or cc.codec is None or not cc.codec.is_decoder:
        raise unsupported_codec_error(name, codec)
    rate = s.average_rate or s.guessed_rate
    duration = None
    if s.duration is not None and s.time_base is not None:
        duration = float(s.duration * s.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    info: dict[str, Any] = {
        "input": name,
        "container": container.format.name,
        "codec": codec,
        "profile": getattr(cc, "profile", None),
        "width": cc.width,
        "height": cc.height,
        "pixel_format": getattr(cc.format, "name", None) if cc.format else None,
        "fps": round(float(rate), 3) if rate else None,
        "time_base": str(s.time_base) if s.time_base else None,
        "duration_s": round(duration, 3) if duration is not None else None,
        "frames": s.frames or None,
        "bit_rate": s.bit_rate or container.bit_rate or None,
        "live": live,
        "streams": [f"{st.type}:{getattr(st.codec_context, 'name', '?')}" for st in container.streams],
        "decoder": _decoder(decoder, name, url_or_path, codec),
    }
    return info, s, duration


def _finish(
    info: dict[str, Any], packets: _Packets, *, complete: bool, duration: float | None
) -> dict[str, Any]:
    """``info`` with what the packets tell: keyframes, their interval and (files) the frame count."""
    info = dict(info)
    if complete:
        info["frames"] = packets.n
        if info["bit_rate"] is None and duration:
            info["bit_rate"] = int(packets.size * 8 / duration)
    gaps = [b - a for a, b in itertools.pairwise(packets.key_pos)]
    info["keyframes"] = len(packets.key_pos) if complete else None
    info["keyframe_interval"] = (
        {"mean": round(statistics.mean(gaps), 2), "min": min(gaps), "max": max(gaps)} if gaps else None
    )
    info["frame_interval_ms"] = packets.intervals_ms()
    info["packets_read"] = packets.n
    return info


def _no_answer(name: str, timeout: float) -> SourceError:
    return SourceError(
        f"{name}: no answer within {timeout:g} s (check that the server is up and reachable, or raise "
        "--timeout)",
        source=name,
    )


def probe(
    url_or_path: str,
    timeout: float = 10.0,
    *,
    max_packets: int = MAX_FILE_PACKETS,
    decoder: str = "auto",
) -> dict[str, Any]:
    """Describe the first video stream; raises SourceError/DecodeError with a one-line message.

    The keyframe interval (frames between keyframes: mean, min, max) is measured from packets: all of
    a file's (up to ``max_packets``), or what a live stream sends within ``timeout`` seconds.
    ``decoder`` reports which decoder ``decoder:`` resolves to here, and why; an explicit GPU decoder
    this machine cannot run raises SourceError before anything is opened.

    A stream is probed within ``timeout`` seconds, whatever the server does (accepts and never
    answers, trickles bytes): past it, the probe returns what it has or raises "no answer", and the
    FFmpeg call still running finishes in the background within its own timeout. Only regular files
    are read locally (a FIFO, socket, device node or directory is refused at once).
    """
    name = redact(url_or_path)
    if url_or_path.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        register_url_secrets(url_or_path)
    if decoder != "auto":
        _decoder(decoder, name, url_or_path, None)
    local = _local_path(url_or_path)
    if local is not None:
        check_local_file(local)
        return _probe_file(url_or_path, name, max_packets=max_packets, decoder=decoder)
    return _LiveProbe(url_or_path, name, timeout, decoder, max_packets=max_packets).run()


def _probe_file(url_or_path: str, name: str, *, max_packets: int, decoder: str) -> dict[str, Any]:
    try:
        container = av.open(url_or_path)
    except Exception as exc:
        raise open_error(exc, name) from None
    with container:
        info, s, duration = _describe(container, name, url_or_path, decoder, live=False)
        packets = _Packets()
        try:
            for packet in container.demux(s):
                if packet.size == 0:
                    continue
                packets.add(packet)
                if packets.n >= max_packets:
                    break
        except av.error.FFmpegError:
            pass  # damaged data: report what was read
    info["rotation"] = turns(url_or_path) * 90  # counter-clockwise degrees players turn it by
    return _finish(info, packets, complete=packets.n < max_packets, duration=duration)


class _LiveProbe:
    """Probes a stream on a worker thread, so that the caller waits ``timeout`` seconds at most."""

    #: Seconds past the timeout the caller gives the worker to hand over what it read.
    GRACE_S = 0.5

    def __init__(self, url: str, name: str, timeout: float, decoder: str, *, max_packets: int) -> None:
        self.url, self.name, self.timeout, self.decoder = url, name, timeout, decoder
        self.max_packets = max_packets
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.info: dict[str, Any] | None = None
        self.duration: float | None = None
        self.packets = _Packets()
        self.error: BaseException | None = None
        self.done = False

    def run(self) -> dict[str, Any]:
        self.t0 = time.monotonic()
        worker = threading.Thread(target=self._work, name="framesift-probe", daemon=True)
        worker.start()
        worker.join(self.timeout + self.GRACE_S)
        self.stop.set()
        with self.lock:
            if self.error is not None:
                raise self.error
            if self.info is None:
                raise _no_answer(self.name, self.timeout)
            return _finish(self.info, self.packets, complete=False, duration=self.duration)

    def _work(self) -> None:
        try:
            self._probe()
        except BaseException as exc:  # handed to the caller
            with self.lock:
                if isinstance(exc, SourceError):
                    self.error = exc
                elif time.monotonic() - self.t0 >= 0.9 * self.timeout:
                    self.error = _no_answer(self.name, self.timeout)
                else:
                    self.error = open_error(
                        exc, self.name, timeout_s=self.timeout, timeout_option="--timeout"
                    )

    def _probe(self) -> None:
        opts = {"rtsp_transport": "tcp"} if self.url.startswith(("rtsp://", "rtsps://")) else {}
        container = av.open(self.url, options=opts, timeout=(self.timeout, self.timeout))
        with container:
            info, s, duration = _describe(container, self.name, self.url, self.decoder, live=True)
            with self.lock:
                self.info, self.duration = info, duration
            deadline = self.t0 + self.timeout
            try:
                for packet in container.demux(s):
                    if self.stop.is_set() or time.monotonic() > deadline:
                        break
                    if packet.size == 0:
                        continue
                    with self.lock:
                        self.packets.add(packet)
                        if len(self.packets.key_pos) >= 4 or self.packets.n >= self.max_packets:
                            break
            except av.error.FFmpegError:
                pass  # a stall or damaged data: report what was read
