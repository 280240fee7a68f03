"""``type: file``: a recorded video file (anything FFmpeg reads), decoded by the decoder ``decoder`` picks."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from framesift.config.sources import SourceSpec


class FileSourceConfig(SourceSpec):
    """A recorded video file (anything FFmpeg reads).

    ``fast_decode`` skips the codec's in-loop deblocking filter (H.264/HEVC: about a quarter less
    decoding time; pictures are slightly blockier, which small analysis frames do not see).
    ``scaler``: ``ffmpeg`` resizes to ``width`` x ``height`` with FFmpeg's scaler; ``fast`` halves
    4:2:0 frames (2x2 averages) while they stay at least that big and converts them in one call
    (1280x720 asked for 256 wide: 320x180), for analysis frames whose exact size does not matter
    (``framesift scenes`` asks for 256 wide).
    """

    type: Literal["file"] = "file"
    implementation: ClassVar[str] = "framesift.stream.factory:decoded_source"

    path: str
    start: float | None = Field(None, ge=0, description="seconds")
    end: float | None = Field(None, gt=0, description="seconds")
    realtime: bool = Field(False, description="pace frames at their timestamps (replay as live)")
    loop: bool = False
    fast_decode: bool = Field(False, description="skip the in-loop deblocking filter (faster, blockier)")
    scaler: Literal["ffmpeg", "fast"] = Field(
        "ffmpeg",
        description="ffmpeg: exactly width x height; fast: halved (2x2 averages) while at least that",
    )

    @model_validator(mode="after")
    def _check_window(self) -> FileSourceConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self

    def input(self) -> str:
        return self.path

    def ends(self) -> bool:
        return not (self.realtime or self.loop)

    def frame_count(self) -> int | None:
        from framesift.stream.headers import expected_frames

        n = expected_frames(self)
        return n if n is None or self.max_frames is None else min(n, self.max_frames)
