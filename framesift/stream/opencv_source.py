"""OpenCV (cv2.VideoCapture) as an alternative decoding backend for files, RTSP/HTTP and devices.

Timestamps come from ``CAP_PROP_POS_MSEC`` with a 1/1000 time base. Output size is converted with
``cv2.resize`` (INTER_AREA) and colour with ``cv2.cvtColor``; ``keyframes_only`` is not supported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import cv2

from framesift.errors import SourceError
from framesift.frame import Frame
from framesift.log import redact
from framesift.stream._errors import check_local_file
from framesift.stream.base import Source
from framesift.stream.sampling import FpsSampler, output_size
from framesift.stream.sources.device import DeviceSourceConfig
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.http import HttpSourceConfig
from framesift.stream.sources.rtsp import RtspSourceConfig

log = logging.getLogger(__name__)

OpenCVConfig = FileSourceConfig | RtspSourceConfig | HttpSourceConfig | DeviceSourceConfig
MSEC = Fraction(1, 1000)
_ENV_LOCK = threading.Lock()


class OpenCVSource(Source):
    """Reads with ``cv2.VideoCapture`` (FFmpeg backend for files/URLs, V4L2 for devices)."""

    def __init__(self, cfg: OpenCVConfig, source_id: str) -> None:
        super().__init__(source_id)
        if cfg.keyframes_only:
            raise SourceError(
                f"source {source_id!r}: keyframes_only is not supported by decoder: opencv (use decoder: pyav)"
            )
        self.cfg = cfg
        self.live = not isinstance(cfg, FileSourceConfig)
        if isinstance(cfg, FileSourceConfig):
            self.url = cfg.path
        elif isinstance(cfg, (RtspSourceConfig, HttpSourceConfig)):
            self.url = cfg.url
        else:
            self.url = cfg.device
        self.input_name = redact(self.url)
        self._cap: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reading = False
        self._count = 0  # frames decoded so far (keeps counting across reconnects)

    def _params(self) -> list[int]:
        cfg = self.cfg
        params: list[int] = []
        if isinstance(cfg, (RtspSourceConfig, HttpSourceConfig, DeviceSourceConfig)):
            params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000)]
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)]
        if cfg.threads and hasattr(cv2, "CAP_PROP_N_THREADS"):
            params += [cv2.CAP_PROP_N_THREADS, cfg.threads]
        return params

    def open(self) -> None:
        self._stop.clear()
        self._release()
        cfg = self.cfg
        if isinstance(cfg, FileSourceConfig) and "://" not in cfg.path:
            check_local_file(cfg.path)
        if isinstance(cfg, DeviceSourceConfig):
            if not os.path.exists(cfg.device):
                raise SourceError(
                    f"{cfg.device}: capture device not found (list devices with `v4l2-ctl --list-devices`)"
                )
            cap = cv2.VideoCapture(cfg.device, cv2.CAP_V4L2, self._params())
            if cfg.fps:
                cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            if cfg.input_format and len(cfg.input_format) >= 4:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.input_format[:4].upper()))
        else:
            with _ENV_LOCK:  # OpenCV reads its FFmpeg options from the environment at open time
                old = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
                if isinstance(cfg, RtspSourceConfig):
                    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{cfg.transport}"
                try:
                    cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, self._params())
                finally:
                    if isinstance(cfg, RtspSourceConfig):
                        if old is None:
                            os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
                        else:
                            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = old
        if not cap.isOpened():
            cap.release()
            what = "URL" if "://" in self.url else "file"
            raise SourceError(
                f"{self.input_name}: OpenCV cannot open this {what} (unreachable, or not a video it can "
                "decode; use decoder: pyav for a precise error)"
            )
        if isinstance(cfg, FileSourceConfig) and cfg.start:
            cap.set(cv2.CAP_PROP_POS_MSEC, cfg.start * 1000.0)
        self._cap = cap

    def _convert(self, img: Any) -> Any:
        cfg = self.cfg
        size = output_size(img.shape[1], img.shape[0], cfg.width, cfg.height)
        if size is not None and size != (img.shape[1], img.shape[0]):
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        if cfg.pixel_format == "rgb24":
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if cfg.pixel_format == "gray":
            return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return img

    def frames(self) -> Iterator[Frame]:
        with self._lock:
            cap = self._cap
            if cap is None:
                if self._stop.is_set():
                    return
                raise SourceError(f"{self.input_name}: source is not open (call open() first)")
            self._reading = True
        try:
            yield from self._frames(cap)
        finally:
            with self._lock:
                self._reading = False
                if self._stop.is_set():
                    self._release()

    def _frames(self, cap: Any) -> Iterator[Frame]:
        cfg = self.cfg
        file_cfg = cfg if isinstance(cfg, FileSourceConfig) else None
        start_ms = file_cfg.start * 1000 if file_cfg and file_cfg.start else None
        end_ms = file_cfg.end * 1000 if file_cfg and file_cfg.end else None
        sampler = FpsSampler(cfg.target_fps)
        offset = 0  # ms added per loop pass so time keeps increasing
        index_offset = 0  # frames added per loop pass (when the index follows the file position)
        pace: tuple[float, float] | None = None
        while True:
            first: int | None = None
            last = 0
            window = 0
            while True:
                self.poll()
                if self._stop.is_set():
                    return
                ok, img = cap.read()
                if not ok or img is None:
                    break
                ms = round(cap.get(cv2.CAP_PROP_POS_MSEC))
                pos = int(cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1
                index = pos + index_offset if start_ms is not None and pos >= 0 else self._count
                self._count = index + 1
                self.stats.frames_decoded += 1
                if start_ms is not None and ms < start_ms:
                    self.stats.frames_skipped += 1
                    continue
                if end_ms is not None and ms >= end_ms:
                    break
                if first is None:
                    first = ms
                last = ms
                window += 1
                pts = ms + offset
                if not sampler.keep(pts * MSEC):
                    self.stats.frames_skipped += 1
                    continue
                if file_cfg and file_cfg.realtime:
                    if pace is None:
                        pace = (pts / 1000.0, time.monotonic())
                    delay = pace[1] + pts / 1000.0 - pace[0] - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                now = time.time()
                self.stats.last_frame_wallclock = now
                yield Frame(self.id, index, pts, MSEC, now, self._convert(img))
            if not (file_cfg and file_cfg.loop) or self._stop.is_set() or self._count == 0:
                return
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            offset += last + round(1000 / fps) - (first or 0)
            index_offset += window
            cap.set(cv2.CAP_PROP_POS_MSEC, start_ms or 0.0)

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if not self._reading:
                self._release()
