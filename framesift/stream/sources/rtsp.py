"""``type: rtsp``: an RTSP camera feed."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from framesift.config.sources import LiveSourceSpec, NetURL


class RtspSourceConfig(LiveSourceSpec):
    """An RTSP camera feed."""

    type: Literal["rtsp"] = "rtsp"
    implementation: ClassVar[str] = "framesift.stream.factory:decoded_source"

    url: NetURL = Field(pattern=r"^rtsps?://")
    transport: Literal["tcp", "udp"] = "tcp"

    def input(self) -> str:
        return self.url
