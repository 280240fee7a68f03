"""Detections as JSON lines: per track (track / line-crossing / zone events) or per frame.

Built on :class:`framesift.sinks.jsonl.JsonlSink` (whole-line writes, rotation); it only picks the
events. ``per="track"`` keeps the file small (one line per track start/update/end), ``per="frame"``
writes every frame's boxes (``detections`` events from a tracker with ``per_frame_events``).
"""

from __future__ import annotations

import os
from typing import ClassVar, Literal

from pydantic import Field

from framesift.config.sinks import SinkSpec
from framesift.events import Event, FrameDetections, LineCrossing, TrackEvent, ZoneOccupancy
from framesift.sinks.jsonl import JsonlSink

TRACK_TYPES: tuple[type[Event], ...] = (TrackEvent, LineCrossing, ZoneOccupancy)
FRAME_TYPES: tuple[type[Event], ...] = (FrameDetections,)


class DetectionsSinkConfig(SinkSpec):
    """Detections as JSON lines: one line per track event, or per frame when ``per: frame``."""

    type: Literal["detections"] = "detections"
    implementation: ClassVar[str] = "DetectionsSink"

    path: str
    per: Literal["track", "frame"] = "track"
    queue_size: int = Field(
        64, ge=1, le=100_000, description="events waiting (per-frame ones hold their frame)"
    )


class DetectionsSink(JsonlSink):
    """JSONL of detection events, one line per track event or per frame."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        per: Literal["track", "frame"] = "track",
        rotate_mb: float | None = None,
        keep: int = 5,
        name: str = "detections",
    ) -> None:
        super().__init__(path, rotate_mb=rotate_mb, keep=keep, name=name)
        self.per = per
        self.types = TRACK_TYPES if per == "track" else FRAME_TYPES
        self.accepts = self.types

    @classmethod
    def from_config(cls, cfg: DetectionsSinkConfig) -> DetectionsSink:  # type: ignore[override]
        return cls(cfg.path, per=cfg.per, name=cfg.name or "detections")

    def write(self, event: Event) -> None:
        if isinstance(event, self.types):
            super().write(event)
