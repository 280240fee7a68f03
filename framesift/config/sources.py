"""Configuration models for sources, their buffers, reconnection and watchdog."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from framesift.stream.ringbuffer import OnFull


class Strict(BaseModel):
    """Base for all config models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BufferConfig(Strict):
    """Per-source ring buffer. ``on_full`` defaults to drop_oldest for live sources, block for files."""

    capacity: int = Field(32, ge=1, le=10_000)
    on_full: OnFull | None = None


class ReconnectConfig(Strict):
    """Exponential backoff with jitter for live sources."""

    initial_s: float = Field(0.5, gt=0)
    max_s: float = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1.0)
    jitter: float = Field(0.2, ge=0.0, le=1.0)
    give_up_after: int | None = Field(None, ge=1, description="attempts; None retries forever")


class _SourceBase(Strict):
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]+$")
    decoder: Literal["auto", "pyav", "opencv", "pyav-cuda", "nvcodec"] = "auto"
    target_fps: float | None = Field(None, gt=0)
    keyframes_only: bool = False
    width: int | None = Field(None, ge=16, le=16384)
    height: int | None = Field(None, ge=16, le=16384)
    pixel_format: Literal["rgb24", "bgr24", "gray"] = "rgb24"
    threads: int = Field(0, ge=0, le=64, description="decoder threads; 0 = FFmpeg's choice")
    buffer: BufferConfig = BufferConfig()

    @model_validator(mode="after")
    def _check_decoder(self) -> _SourceBase:
        if self.decoder == "opencv" and self.keyframes_only:
            raise ValueError("keyframes_only is not supported by decoder: opencv (use decoder: auto or pyav)")
        return self


class FileSourceConfig(_SourceBase):
    """A recorded video file (anything FFmpeg reads)."""

    type: Literal["file"] = "file"
    path: str
    start: float | None = Field(None, ge=0, description="seconds")
    end: float | None = Field(None, gt=0, description="seconds")
    realtime: bool = Field(False, description="pace frames at their timestamps (replay as live)")
    loop: bool = False

    @model_validator(mode="after")
    def _check_window(self) -> FileSourceConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class _LiveBase(_SourceBase):
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    reconnect: ReconnectConfig = ReconnectConfig()
    watchdog_s: float | None = Field(15.0, gt=0, description="restart after this long with no frame")


class RtspSourceConfig(_LiveBase):
    """An RTSP camera feed."""

    type: Literal["rtsp"] = "rtsp"
    url: str = Field(pattern=r"^rtsps?://")
    transport: Literal["tcp", "udp"] = "tcp"


class HttpSourceConfig(_LiveBase):
    """An HTTP(S) stream or HLS playlist."""

    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://")


class DeviceSourceConfig(_LiveBase):
    """A local capture device (v4l2 on Linux), e.g. /dev/video0."""

    type: Literal["device"] = "device"
    device: str
    input_format: str | None = Field(None, description="e.g. mjpeg, yuyv422")
    fps: float | None = Field(None, gt=0)


class ImagesSourceConfig(_SourceBase):
    """A folder of images or a glob pattern, read in sorted order at ``fps``."""

    type: Literal["images"] = "images"
    path: str
    fps: float = Field(1.0, gt=0)


SourceConfig = Annotated[
    FileSourceConfig | RtspSourceConfig | HttpSourceConfig | DeviceSourceConfig | ImagesSourceConfig,
    Field(discriminator="type"),
]

LIVE_TYPES = frozenset({"rtsp", "http", "device"})
