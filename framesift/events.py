"""Typed events with a versioned JSON schema (documented in docs/events.md).

Events are frozen dataclasses; sinks serialise them with :meth:`Event.to_dict` and never mutate
them. Every event carries ``schema`` (``framesift.event/<version>``), ``type``, ``source`` and
``wallclock`` (Unix time at emission).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

SCHEMA_VERSION = 1
SCHEMA = f"framesift.event/{SCHEMA_VERSION}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base class of all events."""

    type: ClassVar[str] = "event"
    source: str
    wallclock: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``schema`` and ``type`` first, then the fields in declaration order."""
        out: dict[str, Any] = {"schema": SCHEMA, "type": self.type}
        for f in dataclasses.fields(self):
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


@dataclass(frozen=True, kw_only=True)
class SourceStatus(Event):
    """A source changed state.

    ``state`` is one of: ``connecting``, ``up``, ``eof`` (a file ended), ``disconnected`` (a live
    source lost its connection or stalled), ``reconnecting`` (a retry is scheduled in ``delay_s``),
    ``stalled`` (the watchdog saw no frame for too long), ``failed`` (gave up or unreadable),
    ``stopped`` (closed by the pipeline). With ``up``: the ``input`` (a path, or a URL with its
    credentials masked), and what the stream holds where the decoder knows it: ``width`` x
    ``height`` pixels, the nominal frame rate ``fps`` and the ``codec``.
    """

    type: ClassVar[str] = "source_status"
    state: str
    detail: str = ""
    attempt: int = 0
    delay_s: float | None = None
    frames: int = 0
    input: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    codec: str | None = None


@dataclass(frozen=True, kw_only=True)
class SceneChange(Event):
    """Content changed at ``frame_index`` (a cut) or over ``[start, end]`` (a dissolve or fade)."""

    type: ClassVar[str] = "scene_change"
    frame_index: int
    pts: int
    time_base: Fraction
    time: float
    score: float
    kind: str = "cut"  # cut | dissolve | fade
    scene_id: int = 0
    transition_start: int | None = None
    transition_end: int | None = None
    transition_start_time: float | None = None
    transition_end_time: float | None = None
    label: str | None = None
    thumbnails: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SceneSignal(Event):
    """The scene detector's per-frame signal over a span of frames, for plots and scene reports
    (only with the ``scene_change`` analyzer's ``report`` option).

    ``rows`` are ``(frame_index, time, distance to the previous frame, cut threshold)``; ``labels``
    name the scenes that closed in this span, by their first frame. The last signal of a source has
    ``final`` set, with ``frames`` (frames analysed), ``start_time`` (its first frame) and
    ``end_time`` (the end of its last frame). ``pictures`` (small RGB images of scene openings, by
    frame index) ride along for report sinks and are never serialised.
    """

    type: ClassVar[str] = "scene_signal"
    rows: tuple[tuple[int, float, float, float], ...] = ()
    labels: dict[int, str] = field(default_factory=dict)
    final: bool = False
    frames: int = 0
    start_time: float | None = None
    end_time: float | None = None
    pictures: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("pictures", None)
        return out


@dataclass(frozen=True, kw_only=True)
class FrameKept(Event):
    """The collector kept a frame; ``reason`` says why and ``scores`` hold the evidence."""

    type: ClassVar[str] = "frame_kept"
    frame_index: int
    pts: int
    time_base: Fraction
    time: float
    reason: str
    scores: dict[str, float] = field(default_factory=dict)
    id: str | None = None
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrackEvent(Event):
    """A tracked object started, was updated, or ended."""

    type: ClassVar[str] = "track"
    track_id: int
    phase: str  # started | updated | ended
    class_name: str
    confidence: float
    box: tuple[float, float, float, float]
    frame_index: int
    time: float
    crop: str | None = None


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(Event):
    """A stage failed for this source (engine down, sink dropping...); the pipeline stays up."""

    type: ClassVar[str] = "error"
    stage: str
    message: str
    count: int = 1


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (SourceStatus, SceneChange, SceneSignal, FrameKept, TrackEvent, ErrorEvent)
}
