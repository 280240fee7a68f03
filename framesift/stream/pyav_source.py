"""PyAV (FFmpeg) sources: video files, RTSP, HTTP/HLS and local capture devices."""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import av.error
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from framesift.errors import DecodeError, SourceError
from framesift.frame import PICTURE_KEY, Frame, Picture
from framesift.log import redact
from framesift.stream._errors import (
    check_local_file,
    open_error,
    reason,
    unsupported_codec_error,
    video_stream,
)
from framesift.stream.base import Source, StreamInfo
from framesift.stream.orient import coded_target, quarter_turns, upright
from framesift.stream.sampling import FpsSampler, output_size
from framesift.stream.scale import ShotScaler, full_rgb, small_rgb
from framesift.stream.sources.device import DeviceSourceConfig
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.http import HttpSourceConfig
from framesift.stream.sources.rtsp import RtspSourceConfig

log = logging.getLogger(__name__)

PyAVConfig = FileSourceConfig | RtspSourceConfig | HttpSourceConfig | DeviceSourceConfig

#: Consecutive unreadable packets after which a file is declared undecodable.
MAX_CONSECUTIVE_ERRORS = 200


class FpsMeter:
    """Decode rate over a sliding ~1 s window, written to ``stats.fps``."""

    def __init__(self) -> None:
        self._t = time.monotonic()
        self._n = 0

    def tick(self) -> float | None:
        self._n += 1
        now = time.monotonic()
        dt = now - self._t
        if dt >= 1.0:
            fps = self._n / dt
            self._t, self._n = now, 0
            return fps
        return None


class PyAVSource(Source):
    """Decodes one video stream with FFmpeg through PyAV (threaded decoding on).

    Handles ``target_fps`` (by presentation time), ``keyframes_only`` (the decoder skips non-key
    frames), output size/pixel format (FFmpeg's scaler), a ``start``/``end`` window, ``realtime``
    pacing and ``loop`` (files). Every blocking network call is bounded by ``open_timeout_s`` /
    ``read_timeout_s``. ``close()`` may be called from another thread: it stops the iteration at the
    next packet and the reading thread then releases the container.
    """

    def __init__(self, cfg: PyAVConfig, source_id: str) -> None:
        super().__init__(source_id)
        self.cfg = cfg
        self.live = not isinstance(cfg, FileSourceConfig)
        self.url, self.format, self.options = self._target(cfg)
        self.input_name = redact(self.url)
        self._container: InputContainer | None = None
        self._stream: VideoStream | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reading = False
        self._reader: int | None = None
        self._index = 0
        self._dropped = 0  # corrupt frames skipped since the last frame numbered (they keep their numbers)
        # shot_frames: 48x27 RGB as TransNetV2's reference makes them (frame.meta["shot"]); the image
        # itself when the source asks for that size
        self._shot = ShotScaler() if cfg.shot_frames else None
        self._shot_is_image = (cfg.width, cfg.height) == (48, 27) and cfg.pixel_format == "rgb24"
        self._pictures = cfg.full_pictures and (cfg.width or cfg.height) is not None

    # -- opening -----------------------------------------------------------------------------
    @staticmethod
    def _target(cfg: PyAVConfig) -> tuple[str, str | None, dict[str, str]]:
        if isinstance(cfg, FileSourceConfig):
            return cfg.path, None, {}
        if isinstance(cfg, RtspSourceConfig):
            opts = {
                "rtsp_transport": cfg.transport,
                # socket I/O timeout in microseconds (FFmpeg's own guard below PyAV's)
                "timeout": str(int(cfg.read_timeout_s * 1_000_000)),
                "allowed_media_types": "video",
                "analyzeduration": "1000000",
            }
            return cfg.url, None, opts
        if isinstance(cfg, HttpSourceConfig):
            return cfg.url, None, {"rw_timeout": str(int(cfg.read_timeout_s * 1_000_000))}
        opts = {}
        if cfg.input_format:
            opts["input_format"] = cfg.input_format
        if cfg.fps:
            opts["framerate"] = f"{cfg.fps:g}"
        fmt = {"linux": "v4l2", "darwin": "avfoundation", "win32": "dshow"}.get(sys.platform, "v4l2")
        return cfg.device, fmt, opts

    @property
    def _timeouts(self) -> tuple[float, float] | None:
        cfg = self.cfg
        if isinstance(cfg, FileSourceConfig):
            return None
        return (cfg.open_timeout_s, cfg.read_timeout_s)

    def open(self) -> None:
        self._stop.clear()
        self.close_container()
        cfg = self.cfg
        if isinstance(cfg, FileSourceConfig) and "://" not in cfg.path:
            check_local_file(cfg.path)
        timeouts = self._timeouts
        extra = self._open_kwargs()
        try:
            container = av.open(
                self.url,
                mode="r",
                format=self.format,
                options=self.options,
                timeout=timeouts,
                **extra,
            )
        except Exception as exc:
            raise open_error(
                exc,
                self.input_name,
                timeout_s=timeouts[0] if timeouts else None,
                device=isinstance(cfg, DeviceSourceConfig),
            ) from None
        try:
            self._stream = self._setup_stream(container)
        except BaseException:
            container.close()
            raise
        self._container = container
        stream = self._stream
        rate = stream.average_rate or stream.guessed_rate
        self.stream_info = StreamInfo(
            width=stream.codec_context.width or None,
            height=stream.codec_context.height or None,
            fps=round(float(rate), 6) if rate else None,
            codec=stream.codec_context.name,
        )
        if isinstance(cfg, HttpSourceConfig):
            # A URL of a finite file or an HLS VOD playlist has a duration: it ends like a file.
            # Live HTTP streams (live HLS, MJPEG over HTTP) have none and are reconnected.
            self.live = container.duration is None

    def _open_kwargs(self) -> dict[str, Any]:
        """Extra ``av.open`` arguments (the CUDA subclass adds ``hwaccel``)."""
        return {}

    def _setup_stream(self, container: InputContainer) -> VideoStream:
        stream = video_stream(self.input_name, container)
        cc = stream.codec_context
        codec = getattr(cc, "name", None) or "unknown"
        if cc is None or codec == "none" or cc.codec is None or not cc.codec.is_decoder:
            raise unsupported_codec_error(self.input_name, codec)
        stream.thread_type = "AUTO"
        if self.cfg.threads:
            cc.thread_count = self.cfg.threads
        if self.cfg.keyframes_only:
            cc.skip_frame = "NONKEY"
        if isinstance(self.cfg, FileSourceConfig) and self.cfg.fast_decode:
            cc.options = {**cc.options, "skip_loop_filter": "all"}
        return stream

    # -- decoding ----------------------------------------------------------------------------
    def frames(self) -> Iterator[Frame]:
        with self._lock:
            container, stream = self._container, self._stream
            if container is None or stream is None:
                if self._stop.is_set():
                    return  # closed from another thread before reading started
                raise SourceError(
                    f"{self.input_name}: source is not open (call open() first)", source=self.id
                )
            self._reading = True
            self._reader = threading.get_ident()
        try:
            yield from self._frames(container, stream)
        finally:
            with self._lock:
                self._reading = False
                if self._stop.is_set():
                    self.close_container()

    def video_frames(self) -> Iterator[tuple[int, VideoFrame]]:
        """The decoded frames as PyAV gives them, numbered as :meth:`frames` numbers a whole file;
        for re-encoding without a conversion."""
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise SourceError(f"{self.input_name}: source is not open (call open() first)", source=self.id)
        for f in self._decode(container, stream):
            yield self._next_index(), f

    def _next_index(self) -> int:
        """The next frame's number when frames are counted: a corrupt frame skipped keeps its number,
        as in FFmpeg's count (which outputs it), so the frames after it keep theirs."""
        idx = self._index + self._dropped
        self._index, self._dropped = idx + 1, 0
        return idx

    def _frames(self, container: InputContainer, stream: VideoStream) -> Iterator[Frame]:
        cfg = self.cfg
        tb: Fraction = stream.time_base or Fraction(1, 90_000)
        rate: Fraction | None = stream.average_rate or stream.guessed_rate or None
        file_cfg = cfg if isinstance(cfg, FileSourceConfig) else None
        start = Fraction(file_cfg.start).limit_denominator(1_000_000) if file_cfg and file_cfg.start else None
        end = Fraction(file_cfg.end).limit_denominator(1_000_000) if file_cfg and file_cfg.end else None
        realtime = bool(file_cfg and file_cfg.realtime)
        loop = bool(file_cfg and file_cfg.loop)
        # The frame index follows presentation time when the decoder does not see every frame
        # (after a seek, or keyframes only) and the rate is constant; otherwise it counts frames.
        pts_index = bool(rate) and (start is not None or cfg.keyframes_only)
        origin = Fraction(stream.start_time or 0) * tb
        sampler = FpsSampler(cfg.target_fps)
        meter = FpsMeter()
        pts_offset = 0  # added to pts on each loop pass so time keeps increasing
        pace_t0: Fraction | None = None
        pace_w0 = 0.0
        frame_dur = int(1 / (rate * tb)) if rate else 1

        while True:
            if start is not None:
                container.seek(int(start / tb) + (stream.start_time or 0), stream=stream, backward=True)
            prev: int | None = None
            first_pts: int | None = None  # first and last frame inside the window, for looping
            last_pts: int | None = None
            for f in self._decode(container, stream):
                raw = f.pts if f.pts is not None else (prev + frame_dur if prev is not None else 0)
                prev = raw
                t_raw = raw * tb
                if pts_index and rate:
                    idx = round((t_raw - origin) * rate) + round(pts_offset * tb * rate)
                    self._index, self._dropped = idx + 1, 0
                else:
                    idx = self._next_index()
                self.stats.frames_decoded += 1
                fps = meter.tick()
                if fps is not None:
                    self.stats.fps = fps
                if start is not None and t_raw - origin < start:
                    self.stats.frames_skipped += 1
                    continue
                if end is not None and t_raw - origin >= end:
                    break
                if first_pts is None:
                    first_pts = raw
                last_pts = raw
                pts = raw + pts_offset
                t = pts * tb
                if not sampler.keep(t):
                    self.stats.frames_skipped += 1
                    continue
                if realtime:
                    if pace_t0 is None:
                        pace_t0, pace_w0 = t, time.monotonic()
                    delay = pace_w0 + float(t - pace_t0) - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                turns = quarter_turns(f)
                shot = self._shot(f, turns) if self._shot is not None else None
                image = shot if shot is not None and self._shot_is_image else self._convert(f, turns)
                meta = self._frame_meta(f, image)
                if shot is not None:
                    meta["shot"] = shot
                if self._pictures and image.shape[0] * image.shape[1] != f.width * f.height:
                    meta[PICTURE_KEY] = Picture(functools.partial(self._full, f, turns))
                now = time.time()
                self.stats.last_frame_wallclock = now
                yield Frame(
                    source_id=self.id,
                    index=idx,
                    pts=pts,
                    time_base=tb,
                    wallclock=now,
                    image=image,
                    keyframe=bool(f.key_frame),
                    meta=meta,
                )
                if self._stop.is_set():  # closed while suspended: never touch the container again
                    return
            if not loop or self._stop.is_set() or last_pts is None or first_pts is None:
                return
            pts_offset += last_pts + frame_dur - first_pts
            if start is None:
                container.seek(stream.start_time or 0, stream=stream, backward=True)
            stream.codec_context.flush_buffers()

    def _decode(self, container: InputContainer, stream: VideoStream) -> Iterator[VideoFrame]:
        """Decoded frames; unreadable packets and corrupt frames are counted and skipped.

        A packet FFmpeg cannot decode because it uses a feature FFmpeg does not implement
        (PatchWelcomeError) is skipped like a corrupt one; when no frame at all decodes, the
        codec is reported as unsupported.
        """
        cc = stream.codec_context
        consecutive = 0
        decoded_any = False
        not_implemented = 0  # packets FFmpeg answered "not yet implemented" to
        warned = False

        def unsupported() -> DecodeError:
            return unsupported_codec_error(self.input_name, cc.name)

        def warn_once() -> None:
            # Only once frames decode: when none does, the one-line error says it all.
            nonlocal warned
            if not warned and decoded_any and not_implemented:
                warned = True
                log.warning(
                    "%s: %d packet(s) use a feature FFmpeg does not implement; skipped and counted as "
                    "decode errors",
                    self.input_name,
                    not_implemented,
                )

        while True:
            packets: Any = container.demux(stream)
            try:
                for packet in packets:
                    self.poll()
                    if self._stop.is_set():
                        return
                    try:
                        decoded = cc.decode(packet)
                    except av.error.FFmpegError as exc:
                        if isinstance(exc, av.error.DecoderNotFoundError):
                            raise unsupported() from None
                        consecutive += 1
                        self.stats.decode_errors += 1
                        if isinstance(exc, av.error.PatchWelcomeError):
                            not_implemented += 1
                            self._count("unsupported_packets")
                            warn_once()
                        log.debug("%s: decode error skipped: %s", self.input_name, reason(exc))
                        if consecutive >= MAX_CONSECUTIVE_ERRORS:
                            if not decoded_any and not_implemented:
                                raise unsupported() from None
                            raise DecodeError(
                                f"{self.input_name}: {consecutive} packets in a row could not be decoded "
                                f"({reason(exc)}; the stream is corrupt or not {cc.name})",
                                source=self.id,
                            ) from None
                        continue
                    for f in decoded:
                        if f.is_corrupt:
                            self.stats.decode_errors += 1
                            self._dropped += 1
                            continue
                        consecutive = 0
                        decoded_any = True
                        warn_once()
                        yield f
                if not decoded_any and not_implemented:
                    raise unsupported()
                return  # end of stream
            except av.error.ExitError:
                if self._stop.is_set():
                    return
                timeout = self._timeouts[1] if self._timeouts else 0
                raise SourceError(
                    f"{self.input_name}: no data for {timeout:g} s (read timeout; the server stalled or "
                    "the network is down)",
                    source=self.id,
                ) from None
            except (av.error.EOFError, EOFError):
                return
            except av.error.InvalidDataError as exc:
                # Damaged container data: count it and read on from the next readable packet.
                consecutive += 1
                self.stats.decode_errors += 1
                if consecutive >= MAX_CONSECUTIVE_ERRORS or self.live:
                    raise SourceError(
                        f"{self.input_name}: unreadable data ({reason(exc)})", source=self.id
                    ) from None
            except OSError as exc:
                if isinstance(exc, SourceError):
                    raise
                raise SourceError(f"{self.input_name}: read failed ({reason(exc)})", source=self.id) from None
            finally:
                packets.close()

    def _count(self, cause: str) -> None:
        self.stats.extra[cause] = self.stats.extra.get(cause, 0) + 1

    def _convert(self, f: VideoFrame, turns: int = 0) -> Any:
        """``f`` at the configured size and pixel format, upright (``turns``: see
        :func:`~framesift.stream.orient.quarter_turns`)."""
        return upright(self._scaled(f, *coded_target(self.cfg.width, self.cfg.height, turns)), turns)

    def _full(self, f: VideoFrame, turns: int) -> Any:
        """``f`` at its own size, upright: the :class:`~framesift.frame.Picture` behind a small
        frame (``full_pictures``); may run on another thread (the frame owns its buffers)."""
        return upright(self._scaled(f, None, None), turns)

    def _scaled(self, f: VideoFrame, width: int | None, height: int | None) -> Any:
        size = output_size(f.width, f.height, width, height)
        cfg = self.cfg
        if (
            size is not None
            and cfg.pixel_format == "rgb24"
            and isinstance(cfg, FileSourceConfig)
            and cfg.scaler == "fast"
        ):
            return small_rgb(f, *size)
        if size is None:
            # swscale's colours within 3 levels, cheaper on most CPUs (not all: swscale took half
            # OpenCV's time on an AVX-512 EPYC), and the same on every run: a race between the
            # two, tried before, flipped under load and with it which frames a collection kept
            img = full_rgb(f, cfg.pixel_format)
            if img is not None:
                return img
        kw: dict[str, Any] = {"format": self.cfg.pixel_format}
        if size is not None:
            kw["width"], kw["height"] = size
        return f.to_ndarray(**kw)

    def _frame_meta(self, f: VideoFrame, image: Any) -> dict[str, Any]:
        """Per-frame metadata (the CUDA subclass says where the frame was decoded and lives)."""
        return {}

    # -- closing -----------------------------------------------------------------------------
    def close_container(self) -> None:
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception as exc:  # closing must never raise
                log.debug("%s: error while closing: %s", self.input_name, exc)

    def close(self) -> None:
        """Stop reading; safe from any thread (the reader releases the container if it is busy)."""
        self._stop.set()
        with self._lock:
            # A suspended generator on this very thread is not inside FFmpeg: closing is safe.
            if not self._reading or self._reader == threading.get_ident():
                self.close_container()
