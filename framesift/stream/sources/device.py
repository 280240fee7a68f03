"""``type: device``: a local capture device (v4l2 on Linux)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from framesift.config.sources import LiveSourceSpec


class DeviceSourceConfig(LiveSourceSpec):
    """A local capture device (v4l2 on Linux), e.g. /dev/video0."""

    type: Literal["device"] = "device"
    implementation: ClassVar[str] = "framesift.stream.factory:decoded_source"

    device: str
    input_format: str | None = Field(None, description="e.g. mjpeg, yuyv422")
    fps: float | None = Field(None, gt=0)

    def input(self) -> str:
        return self.device
