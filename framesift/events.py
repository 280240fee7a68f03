"""Typed events: the contract every sink writes (docs/events.md; JSON Schema in framesift/schemas).

Events are frozen dataclasses; sinks serialise them with :meth:`Event.to_dict` and never mutate
them. Every event carries ``schema`` (``framesift.event/<version>``), ``type``, ``source`` and
``wallclock`` (Unix time at emission), then its own fields in declaration order.

A field's annotation is its contract: the JSON Schema is generated from the annotations
(:mod:`framesift.schemas`). ``Annotated`` metadata says what a Python type cannot:

- :class:`Doc`: the field's description and extra JSON Schema keywords (``enum``, ``minimum``, a
  shared ``$defs`` entry);
- :class:`WrittenAs`: the field holds an in-process object that is written as another type through a
  converter (``sv.Detections`` → a list of :class:`DetectionRow`);
- :data:`NOT_WRITTEN`: the field travels in process only (an image, an embedding, the source frame)
  and is never serialised.

Every event type is a class of this module; :data:`EVENT_TYPES` maps each ``type`` name to its class
and is built from the classes, so code dispatches on classes (``isinstance``), never on strings.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Annotated, Any, ClassVar, TypedDict, get_args, get_origin, get_type_hints

from framesift.frame import Frame

SCHEMA_VERSION = 2
SCHEMA = f"framesift.event/{SCHEMA_VERSION}"

SOURCE_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
"""What a source id is: the configured ``id`` (framesift/config/sources.py) or one derived from the
input with every other character replaced (framesift/stream/factory.py ``source_id_for``)."""


# -- annotation metadata -------------------------------------------------------------------------------


class Doc:
    """``Annotated`` metadata: a field's description and extra JSON Schema keywords.

    ``name`` makes the annotated type a shared definition (``#/$defs/<name>``) of the schema.
    """

    __slots__ = ("description", "keywords", "name")

    def __init__(self, description: str, *, name: str | None = None, **keywords: Any) -> None:
        self.description = description
        self.name = name
        self.keywords = keywords


class WrittenAs:
    """``Annotated`` metadata: the field is written as ``json_type``, produced by ``convert(value)``."""

    __slots__ = ("convert", "json_type")

    def __init__(self, json_type: Any, convert: Callable[[Any], Any]) -> None:
        self.json_type = json_type
        self.convert = convert


class _NotWritten:
    def __repr__(self) -> str:
        return "NOT_WRITTEN"


NOT_WRITTEN = _NotWritten()
"""``Annotated`` metadata: an in-process field (image, embedding, frame), never serialised."""


@dataclass(frozen=True)
class EventField:
    """One field of an event class as the serialiser and the schema generator see it."""

    name: str
    type: Any  # the annotation without its Annotated metadata (WrittenAs: the written type)
    doc: Doc | None
    written: bool
    convert: Callable[[Any], Any] | None
    declared: dataclasses.Field[Any]


_FIELDS: dict[type, tuple[EventField, ...]] = {}


def event_fields(cls: type[Event]) -> tuple[EventField, ...]:
    """The fields of ``cls`` in declaration order, with their annotation metadata (cached)."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    hints = get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        meta: tuple[Any, ...] = ()
        if get_origin(tp) is Annotated:
            tp, *rest = get_args(tp)
            meta = tuple(rest)
        doc = next((m for m in meta if isinstance(m, Doc)), None)
        written_as = next((m for m in meta if isinstance(m, WrittenAs)), None)
        if written_as is not None:
            tp = written_as.json_type
        written = not any(m is NOT_WRITTEN for m in meta)
        convert = None if written_as is None else written_as.convert
        out.append(EventField(f.name, tp, doc, written, convert, f))
    _FIELDS[cls] = result = tuple(out)
    return result


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


# -- shared field types ----------------------------------------------------------------------------------

SourceId = Annotated[
    str,
    Doc(
        "source id: the configured `id`, or one derived from the input (never credentials); "
        "`pipeline` for pipeline-wide errors",
        name="source_id",
        pattern=SOURCE_ID_PATTERN,
    ),
]
FrameIndex = Annotated[int, Doc("decoded-frame index in the source", minimum=0)]
Pts = Annotated[int, Doc("presentation timestamp in `time_base` units")]
TimeBase = Annotated[Fraction, Doc("exact time base; `pts × time_base` is the presentation time")]
Seconds = Annotated[float, Doc("presentation time of the frame in seconds")]


# -- events ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base class of all events (the envelope every event carries)."""

    type: ClassVar[str] = "event"
    source: SourceId
    wallclock: Annotated[float, Doc("Unix time (s) when the event was emitted")] = field(
        default_factory=time.time
    )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``schema`` and ``type`` first, then the written fields in order."""
        out: dict[str, Any] = {"schema": SCHEMA, "type": self.type}
        for f in event_fields(type(self)):
            if f.written:
                value = getattr(self, f.name)
                out[f.name] = _jsonable(value if f.convert is None else f.convert(value))
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
    state: Annotated[
        str,
        Doc(
            "the source's new state",
            enum=["connecting", "up", "eof", "disconnected", "reconnecting", "stalled", "failed", "stopped"],
        ),
    ]
    detail: Annotated[str, Doc("human-readable reason (credentials redacted)")] = ""
    attempt: Annotated[int, Doc("reconnect attempt number (0 when not reconnecting)", minimum=0)] = 0
    delay_s: Annotated[float | None, Doc("seconds until the next attempt (reconnecting only)")] = None
    frames: Annotated[int, Doc("frames the source delivered so far", minimum=0)] = 0
    input: Annotated[str | None, Doc("what it reads: a path, or a URL with credentials masked (up only)")] = (
        None
    )
    width: Annotated[int | None, Doc("frame width in pixels, where the decoder knows it (up only)")] = None
    height: Annotated[int | None, Doc("frame height in pixels, where the decoder knows it (up only)")] = None
    fps: Annotated[float | None, Doc("nominal frame rate, where the container states it (up only)")] = None
    codec: Annotated[str | None, Doc("the video codec's FFmpeg name (up only)")] = None


@dataclass(frozen=True, kw_only=True)
class SceneChange(Event):
    """Content changed at ``frame_index`` (a cut) or over ``[start, end]`` (a dissolve or fade).

    For a gradual transition ``frame_index`` is the frame where the picture becomes closer to the new
    shot than to the old one.
    """

    type: ClassVar[str] = "scene_change"
    frame_index: FrameIndex
    pts: Pts
    time_base: TimeBase
    time: Seconds
    score: Annotated[float, Doc("detector score of the change")]
    kind: Annotated[str, Doc("kind of boundary", enum=["cut", "dissolve", "fade"])] = "cut"
    scene_id: Annotated[
        int,
        Doc(
            "number of the scene this boundary opens, 1-based as in PySceneDetect's CSV (the first "
            "scene has no boundary event); 0 when not numbered"
        ),
    ] = 0
    transition_start: Annotated[
        int | None, Doc("first frame of the transition (inclusive; `frame_index` for a cut)")
    ] = None
    transition_end: Annotated[
        int | None, Doc("last frame of the transition (inclusive; `frame_index` for a cut)")
    ] = None
    transition_start_time: Annotated[float | None, Doc("presentation time of `transition_start`, s")] = None
    transition_end_time: Annotated[float | None, Doc("presentation time of `transition_end`, s")] = None
    label: Annotated[str | None, Doc("zero-shot label of the new scene, if any")] = None
    thumbnails: Annotated[
        tuple[str, ...],
        Doc("JPEG paths of the last frame before and the first frame after the transition, when written"),
    ] = ()


class FramePayload:
    """The image, embedding and model id of a kept frame, handed over once (to the frame store).

    :meth:`take` drops the references, so an event kept alive elsewhere afterwards (e.g. for latency
    bookkeeping) no longer pins the image. The image is the frame's own read-only array (no copy),
    or an :class:`~framesift.frame.EncodedImage`.
    """

    __slots__ = ("_lock", "embedding", "image", "model")

    def __init__(self, image: Any, embedding: Any = None, model: str | None = None) -> None:
        self.image = image
        self.embedding = embedding
        self.model = model
        self._lock = threading.Lock()

    def take(self) -> tuple[Any, Any, str | None] | None:
        """``(image, embedding, model)`` the first time, then None (the references are dropped)."""
        with self._lock:
            if self.image is None:
                return None
            out = (self.image, self.embedding, self.model)
            self.image = self.embedding = None
            return out


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
    rows: Annotated[
        tuple[tuple[int, float, float, float], ...],
        Doc("per decided frame: frame index, time (s), distance to the previous frame, cut threshold"),
    ] = ()
    labels: Annotated[
        dict[int, str],
        WrittenAs(dict[str, str], lambda d: {str(k): v for k, v in d.items()}),
        Doc("label of each scene that closed in this span, by its first frame (a number, as a key)"),
    ] = field(default_factory=dict)
    final: Annotated[bool, Doc("the source's last signal: its frame count and time span follow")] = False
    frames: Annotated[int, Doc("frames analysed (final only)", minimum=0)] = 0
    start_time: Annotated[float | None, Doc("time of the source's first frame, s (final only)")] = None
    end_time: Annotated[float | None, Doc("end of its last frame, s (final only)")] = None
    pictures: Annotated[dict[int, Any], NOT_WRITTEN] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class FrameKept(Event):
    """The collector kept a frame; ``reason`` says why and ``scores`` hold the evidence.

    ``payload`` carries the image and embedding to the frame store in process; it is never written.
    """

    type: ClassVar[str] = "frame_kept"
    frame_index: FrameIndex
    pts: Pts
    time_base: TimeBase
    time: Seconds
    reason: Annotated[str, Doc("why the collector kept it (policy names joined by `+`)")]
    scores: Annotated[dict[str, float], Doc("evidence: named scores (novelty, relevance)")] = field(
        default_factory=dict
    )
    id: Annotated[str | None, Doc("stable id of the kept frame (the frame store's key)")] = None
    path: Annotated[str | None, Doc("where the frame store wrote it")] = None
    payload: Annotated[FramePayload | None, NOT_WRITTEN] = field(default=None, repr=False, compare=False)


Box = Annotated[tuple[float, float, float, float], Doc("x1, y1, x2, y2 in pixels of the frame")]


@dataclass(frozen=True, kw_only=True)
class TrackEvent(Event):
    """A tracked object started, was updated, or ended."""

    type: ClassVar[str] = "track"
    track_id: Annotated[int, Doc("tracker id, unique per source")]
    phase: Annotated[str, Doc("what happened to the track", enum=["started", "updated", "ended"])]
    class_name: Annotated[str, Doc("detected class (the prompt)")]
    confidence: Annotated[float, Doc("detector confidence", minimum=0, maximum=1)]
    box: Box
    frame_index: FrameIndex
    time: Seconds
    crop: Annotated[str | None, Doc("best crop so far: a JPEG path, or a `data:image/jpeg;base64,` URI")] = (
        None
    )


class _DetectionBox(TypedDict):
    box: Box


class DetectionRow(_DetectionBox, total=False):
    """One detected object of a ``detections`` event."""

    confidence: float
    class_id: int
    class_name: str
    track_id: int
    mask_area: int


def detections_to_list(det: Any) -> list[DetectionRow]:
    """``sv.Detections`` → JSON-ready rows (box, confidence, class, track id, mask area).

    Duck-typed, so this module does not import supervision.
    """
    if det is None:
        return []
    names = det.data.get("class_name") if det.data else None
    rows = []
    for i in range(len(det)):
        x1, y1, x2, y2 = (round(float(v), 2) for v in det.xyxy[i])
        row: DetectionRow = {"box": (x1, y1, x2, y2)}
        if det.confidence is not None:
            row["confidence"] = round(float(det.confidence[i]), 4)
        if det.class_id is not None:
            row["class_id"] = int(det.class_id[i])
        if names is not None:
            row["class_name"] = str(names[i])
        if det.tracker_id is not None:
            row["track_id"] = int(det.tracker_id[i])
        if det.mask is not None:
            row["mask_area"] = int(det.mask[i].sum())
        rows.append(row)
    return rows


@dataclass(frozen=True, kw_only=True)
class FrameDetections(Event):
    """All tracked detections of one frame (for per-frame JSONL and the annotated video).

    ``detections`` is the ``sv.Detections`` (with ``tracker_id``, ``mask`` when segmented), written
    as one :class:`DetectionRow` per object; ``frame`` is the source frame (never written).
    """

    type: ClassVar[str] = "detections"
    frame_index: FrameIndex
    pts: Pts
    time_base: TimeBase
    time: Seconds
    detections: Annotated[
        Any, WrittenAs(list[DetectionRow], detections_to_list), Doc("the frame's tracked objects")
    ] = field(default=None, repr=False, compare=False)
    frame: Annotated[Frame | None, NOT_WRITTEN] = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class LineCrossing(Event):
    """A track crossed a counting line (``direction`` in/out); running totals included."""

    type: ClassVar[str] = "line_crossing"
    line: Annotated[str, Doc("the line's name from the config")]
    direction: Annotated[str, Doc("side the track crossed to", enum=["in", "out"])]
    track_id: Annotated[int, Doc("tracker id, unique per source")]
    class_name: Annotated[str, Doc("detected class (the prompt)")]
    frame_index: FrameIndex
    time: Seconds
    in_count: Annotated[int, Doc("crossings in so far on this line", minimum=0)]
    out_count: Annotated[int, Doc("crossings out so far on this line", minimum=0)]


@dataclass(frozen=True, kw_only=True)
class ZoneOccupancy(Event):
    """The number of tracked objects inside a polygon zone changed."""

    type: ClassVar[str] = "zone_occupancy"
    zone: Annotated[str, Doc("the zone's name from the config")]
    count: Annotated[int, Doc("objects inside now", minimum=0)]
    classes: Annotated[dict[str, int], Doc("objects inside now, per class")]
    frame_index: FrameIndex
    time: Seconds


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(Event):
    """A stage failed for this source (engine down, sink dropping...); the pipeline stays up."""

    type: ClassVar[str] = "error"
    stage: Annotated[str, Doc("failing stage: engine, analyzer:NAME, sink:NAME")]
    message: Annotated[str, Doc("what failed (credentials redacted)")]
    count: Annotated[int, Doc("occurrences folded into this event (frames dropped)", minimum=0)] = 1


@dataclass(frozen=True, kw_only=True)
class SourceMoved(Event):
    """A fleet (``framesift run --ray``) restarted a source on another node because its node died.

    ``lost_events`` counts the events the dead node had queued for the sinks but not delivered, as
    of the last counters it reported (a lower bound: events made after that report are unknown).
    """

    type: ClassVar[str] = "source_moved"
    from_node: Annotated[str, Doc("Ray node id the source ran on")]
    to_node: Annotated[str, Doc("Ray node id it runs on now")]
    reason: Annotated[str, Doc("why it moved (the node died, its worker process died)")]
    lost_events: Annotated[
        int, Doc("events queued on the dead node but not delivered, by its last report", minimum=0)
    ] = 0


def in_process_stripped(event: Event) -> Event:
    """``event`` without its in-process fields (images, embeddings, frames: reset to their
    defaults), so it can travel between processes; the event itself when it has none set."""
    changes: dict[str, Any] = {}
    for f in event_fields(type(event)):
        if f.written or not f.declared.init:
            continue
        value, d = getattr(event, f.name), f.declared
        if value is None or (isinstance(value, (dict, list, tuple)) and not value):
            continue
        changes[f.name] = d.default_factory() if d.default_factory is not dataclasses.MISSING else d.default
    return dataclasses.replace(event, **changes) if changes else event


def _registry() -> dict[str, type[Event]]:
    out: dict[str, type[Event]] = {}
    for obj in list(globals().values()):
        if isinstance(obj, type) and issubclass(obj, Event) and "type" in vars(obj) and obj is not Event:
            if obj.type in out:
                raise TypeError(f"event type {obj.type!r} is declared by {out[obj.type]} and {obj}")
            out[obj.type] = obj
    return out


EVENT_TYPES: dict[str, type[Event]] = _registry()
"""Every event type of this module, ``type`` name → class, in declaration order."""


def event_classes(names: Iterable[str]) -> tuple[type[Event], ...]:
    """The classes of the event type ``names``; ValueError naming the allowed ones for an unknown one."""
    names = list(names)
    unknown = [n for n in names if n not in EVENT_TYPES]
    if unknown:
        raise ValueError(
            f"unknown event type{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(EVENT_TYPES)})"
        )
    return tuple(EVENT_TYPES[n] for n in names)
