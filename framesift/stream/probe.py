"""``probe``: what a file or stream holds (container, codec, size, rate, duration, keyframe interval)."""

from __future__ import annotations

import itertools
import statistics
import time
from typing import Any

import av
import av.error

from framesift.errors import SourceError
from framesift.log import redact, register_url_secrets
from framesift.stream._errors import (
    check_local_file,
    is_url,
    no_video_error,
    open_error,
    unsupported_codec_error,
)

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
    """
    name = redact(url_or_path)
    if url_or_path.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        register_url_secrets(url_or_path)
    if decoder != "auto":
        _decoder(decoder, name, url_or_path, None)
    live = is_url(url_or_path) and not url_or_path.startswith("file:")
    if not is_url(url_or_path):
        check_local_file(url_or_path)
    opts = {"rtsp_transport": "tcp"} if url_or_path.startswith(("rtsp://", "rtsps://")) else {}
    try:
        container = av.open(url_or_path, options=opts, timeout=(timeout, timeout) if live else None)
    except Exception as exc:
        raise open_error(exc, name, timeout_s=timeout) from None
    with container:
        if not container.streams.video:
            raise no_video_error(name, container)
        s = container.streams.video[0]
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
        key_pos: list[int] = []
        n = 0
        size = 0
        deadline = time.monotonic() + timeout
        try:
            for packet in container.demux(s):
                if packet.size == 0:
                    continue
                if packet.is_keyframe:
                    key_pos.append(n)
                n += 1
                size += packet.size
                if n >= max_packets or (live and (time.monotonic() > deadline or len(key_pos) >= 4)):
                    break
        except av.error.FFmpegError:
            pass  # damaged data: report what was read
        complete = not live and n < max_packets
        if complete:
            info["frames"] = n
            if info["bit_rate"] is None and duration:
                info["bit_rate"] = int(size * 8 / duration)
        gaps = [b - a for a, b in itertools.pairwise(key_pos)]
        info["keyframes"] = len(key_pos) if complete else None
        info["keyframe_interval"] = (
            {"mean": round(statistics.mean(gaps), 2), "min": min(gaps), "max": max(gaps)} if gaps else None
        )
        info["packets_read"] = n
    return info
