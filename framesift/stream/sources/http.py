"""``type: http``: an HTTP(S) stream or HLS playlist (a finite one ends like a file)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from framesift.config.sources import LiveSourceSpec, NetURL


class HttpSourceConfig(LiveSourceSpec):
    """An HTTP(S) stream or HLS playlist."""

    type: Literal["http"] = "http"
    implementation: ClassVar[str] = "framesift.stream.factory:decoded_source"

    url: NetURL = Field(pattern=r"^https?://")

    def input(self) -> str:
        return self.url
