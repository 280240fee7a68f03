"""The base of source configs: options every source has, its buffer, and (live) reconnection.

The concrete source types (``file``, ``rtsp``, ``http``, ``device``, ``images``, ``store``) are
plugins: each is one module holding its config model and implementation (see
:mod:`framesift.config.plugins`).
"""

from __future__ import annotations

import abc
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, model_validator

from framesift.config.base import OnFull, PluginSpec, Strict

__all__ = [
    "BufferConfig", "LiveSourceSpec", "NetURL", "OnFull", "ReconnectConfig", "SourceSpec", "Strict", "check_url",
]  # fmt: skip


def check_url(url: str) -> str:
    """A network URL with a host and, if any, a port from 1 to 65535; ValueError (one line) otherwise.

    As in redaction, everything up to the URL's last ``@`` is user info (a password may hold ``#``,
    ``/`` or ``@``)."""
    rest = url.partition("://")[2]
    hostport = rest.rpartition("@")[2] if "@" in rest else rest
    for sep in "/?#":
        hostport = hostport.split(sep, 1)[0]
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else None
    else:
        host, colon, port_text = hostport.rpartition(":")
        host, port = (host, port_text) if colon else (hostport, None)
    if not host:
        raise ValueError("the URL has no host (write scheme://host[:port]/path)")
    if port is not None and port != "" and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(
            f"the port in {hostport[:80]!r} is not a number from 1 to 65535 (write host:554, or leave the port out)"
        )
    return url


#: a URL whose host and port are checked when the config is read
NetURL = Annotated[str, AfterValidator(check_url)]


#: The sides a source may scale its frames to (``width``, ``height``), in pixels.
MIN_SIDE, MAX_SIDE = 16, 16384


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


class SourceSpec(PluginSpec):
    """Options of every source. The implementation is called as ``impl(cfg, source_id, gpu_frames=...)``
    and returns a :class:`framesift.stream.base.Source`.

    ``live`` sources (cameras, streams) reconnect and drop their oldest frames when the stage falls
    behind; other sources end, and wait for the stage instead of dropping frames.
    """

    kind: ClassVar[str] = "source"
    live: ClassVar[bool] = False

    id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]+$")
    decoder: Literal["auto", "pyav", "opencv", "pyav-cuda", "nvcodec"] = "auto"
    target_fps: float | None = Field(None, gt=0)
    keyframes_only: bool = False
    width: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE)
    height: int | None = Field(None, ge=MIN_SIDE, le=MAX_SIDE)
    pixel_format: Literal["rgb24", "bgr24", "gray"] = "rgb24"
    threads: int = Field(0, ge=0, le=64, description="decoder threads; 0 = FFmpeg's choice")
    max_frames: int | None = Field(None, ge=1, description="end the source after this many frames")
    shot_frames: bool = Field(
        False,
        description="also make each frame 48x27 RGB with FFmpeg's bicubic scaler, as TransNetV2's reference "
        "reads them (frame.meta['shot']; the image itself when width x height is 48x27); decoder pyav",
    )
    full_pictures: bool = Field(
        False,
        description="with width/height: each frame also carries its full-size picture, converted only "
        "when asked for (frame.meta['picture']; the collector's candidates); decoder pyav",
    )
    buffer: BufferConfig = BufferConfig()

    @model_validator(mode="after")
    def _check_decoder(self) -> SourceSpec:
        if self.decoder == "opencv" and self.keyframes_only:
            raise ValueError("keyframes_only is not supported by decoder: opencv (use decoder: auto or pyav)")
        for name in ("shot_frames", "full_pictures"):
            if getattr(self, name) and self.decoder not in ("auto", "pyav"):
                raise ValueError(f"{name} needs decoder: pyav (or auto), not {self.decoder}")
        if self.id is not None and self.id.strip(".") == "":
            raise ValueError(f"id {self.id!r} is not a name (use letters, digits, _ . : -)")
        return self

    @abc.abstractmethod
    def input(self) -> str:
        """What the source reads (a path, URL or device), for messages and ids."""

    def ends(self) -> bool:
        """Whether it ends and is read as fast as the pipeline goes (a file, not a camera or a file
        replayed in real time): then queues wait for a slow consumer instead of dropping."""
        return not self.live

    def frame_count(self) -> int | None:
        """How many frames it will deliver, where that is known without decoding (a progress bar's
        total); None when unknown or endless."""
        return None


class LiveSourceSpec(SourceSpec):
    """Options of sources that can disconnect: timeouts, reconnection and the watchdog."""

    live: ClassVar[bool] = True

    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    reconnect: ReconnectConfig = ReconnectConfig()
    watchdog_s: float | None = Field(15.0, gt=0, description="restart after this long with no frame")
