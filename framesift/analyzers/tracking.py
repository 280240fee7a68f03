"""Per-source ByteTrack over detections → track events (started / updated / ended), not one per frame.

Each source has its own tracker (Roboflow's ByteTrack, which left ``supervision`` for the
``trackers`` package). A track emits ``started`` when confirmed, ``updated`` at most every
``update_every_s`` seconds of presentation time, and ``ended`` when unseen for ``lost_after_s``
(or when the source ends); every event carries the crop of the track's best-scoring frame so far.
Optional polygon zones report occupancy changes and lines count crossings (supervision's zones).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from framesift.analyzers.detection import DetectionAnalyzer, DetectorConfig, SegmenterConfig, build_engines
from framesift.config.base import AnalyzerSpec, Strict
from framesift.engines.base import Detector, Embedder, Segmenter
from framesift.errors import ConfigError
from framesift.events import Event, FrameDetections, LineCrossing, TrackEvent, ZoneOccupancy
from framesift.frame import Clock, Frame

log = logging.getLogger("framesift.analyzers.tracking")


class ZoneConfig(Strict):
    """A polygon zone (frame pixels); its occupancy per class is reported when it changes."""

    name: str
    polygon: list[tuple[int, int]] = Field(min_length=3)


class LineConfig(Strict):
    """A counting line from ``start`` to ``end`` (frame pixels); crossings in/out are counted."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]


class TrackerConfig(AnalyzerSpec):
    """Analyzer ``tracker``: detector → (optional SAM) → ByteTrack per source → track events."""

    type: Literal["tracker"] = "tracker"
    implementation: ClassVar[str] = "TrackingAnalyzer"

    detector: DetectorConfig
    segment: SegmenterConfig | None = None
    update_every_s: float = Field(5.0, gt=0, description="at most one 'updated' event per track per period")
    lost_after_s: float = Field(1.0, gt=0, description="a track unseen this long ends")
    activation_threshold: float = Field(0.25, ge=0, le=1)
    min_frames: int = Field(1, ge=1, description="frames before a track is confirmed")
    crops_dir: str | None = Field(None, description="save best crops as JPEG here; None = inline data URI")
    crop_max_side: int = Field(256, ge=16)
    per_frame_events: bool = Field(False, description="also emit one 'detections' event per frame")
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)

    def uses_embedder(self) -> bool:
        return False  # the detector has its own CLIP text encoder

    def runs_detector(self) -> bool:
        return True


@dataclass
class _Track:
    track_id: int
    class_name: str
    first_time: float
    last_time: float
    last_frame: int
    box: tuple[float, float, float, float]
    confidence: float
    best_conf: float = -1.0
    best_crop: np.ndarray | None = None
    best_frame: int = -1
    last_emit: float = 0.0
    crop_ref: str | None = None


@dataclass
class _SourceState:
    tracker: Any
    tracks: dict[int, _Track] = field(default_factory=dict)
    zones: list[tuple[str, Any, int]] = field(default_factory=list)  # name, PolygonZone, last count
    lines: list[tuple[str, Any]] = field(default_factory=list)
    clock: Clock = field(default_factory=Clock)  # the tracker takes times that never go back


def make_tracker(frame_rate: float, activation: float, min_frames: int, lost_frames: int) -> Any:
    try:
        from trackers import ByteTrackTracker
    except ModuleNotFoundError:
        raise ConfigError(
            "tracking needs the 'trackers' package (ByteTrack, Apache-2.0): pip install trackers"
        ) from None
    return ByteTrackTracker(
        lost_track_buffer=lost_frames,
        frame_rate=frame_rate,
        track_activation_threshold=activation,
        minimum_consecutive_frames=min_frames,
        high_conf_det_threshold=max(activation, 0.5),
    )


class TrackingAnalyzer(DetectionAnalyzer):
    """Detector (+ optional segmenter) → ByteTrack per source → :class:`TrackEvent` s.

    Use :meth:`on_frame` to detect and track one frame, or :meth:`update` when detections come from
    elsewhere. ``source`` ids keep their trackers apart. With a detector it is ``batched``: in a
    pipeline, :meth:`on_batch` detects the stage's whole batch (frames of every source) at once and
    ``on_frame`` then tracks each frame with its precomputed detections.
    """

    name = "tracker"

    def __init__(
        self,
        detector: Detector | None = None,
        *,
        segmenter: Segmenter | None = None,
        update_every_s: float = 5.0,
        lost_after_s: float = 1.0,
        activation_threshold: float = 0.25,
        min_frames: int = 1,
        frame_rate: float = 30.0,
        crops_dir: str | Path | None = None,
        crop_max_side: int = 256,
        per_frame_events: bool = False,
        zones: Sequence[ZoneConfig] = (),
        lines: Sequence[LineConfig] = (),
    ) -> None:
        super().__init__(detector, segmenter=segmenter)
        self.update_every_s = update_every_s
        self.lost_after_s = lost_after_s
        self.activation = activation_threshold
        self.min_frames = min_frames
        self.frame_rate = frame_rate
        self.crops_dir = Path(crops_dir) if crops_dir else None
        self.crop_max_side = crop_max_side
        self.per_frame_events = per_frame_events
        self.zone_cfgs = list(zones)
        self.line_cfgs = list(lines)
        self._sources: dict[str, _SourceState] = {}
        self.started = 0  # tracks started so far

    @classmethod
    def from_config(cls, cfg: TrackerConfig, embedder: Embedder | None = None) -> TrackingAnalyzer:  # type: ignore[override]
        detector, segmenter = build_engines(cfg.detector, cfg.segment)
        return cls(
            detector,
            segmenter=segmenter,
            update_every_s=cfg.update_every_s,
            lost_after_s=cfg.lost_after_s,
            activation_threshold=cfg.activation_threshold,
            min_frames=cfg.min_frames,
            crops_dir=cfg.crops_dir,
            crop_max_side=cfg.crop_max_side,
            per_frame_events=cfg.per_frame_events,
            zones=cfg.zones,
            lines=cfg.lines,
        )

    def _state(self, source: str) -> _SourceState:
        st = self._sources.get(source)
        if st is None:
            import supervision as sv

            lost_frames = max(1, round(self.lost_after_s * self.frame_rate))
            st = _SourceState(make_tracker(self.frame_rate, self.activation, self.min_frames, lost_frames))
            for z in self.zone_cfgs:
                st.zones.append((z.name, sv.PolygonZone(np.array(z.polygon, dtype=np.int64)), 0))
            for ln in self.line_cfgs:
                st.lines.append((ln.name, sv.LineZone(sv.Point(*ln.start), sv.Point(*ln.end))))
            self._sources[source] = st
        return st

    def on_frame(self, frame: Frame, embedding: np.ndarray | None = None) -> Iterable[Event]:
        """Track ``frame`` with its detections from :meth:`on_batch`, else detect it alone first."""
        return self.update(frame, self.detections(frame))

    def update(self, frame: Frame, detections: Any) -> list[Event]:
        """Track ``detections`` of ``frame``; returns the events this frame causes."""
        st = self._state(frame.source_id)
        now = st.clock(frame.seconds)
        tracked = st.tracker.update(detections, timestamp=now)
        if tracked.tracker_id is not None and len(tracked):
            tracked = tracked[tracked.tracker_id >= 0]
        events: list[Event] = []
        names = tracked.data.get("class_name") if tracked.data else None
        for i in range(len(tracked)):
            tid = int(tracked.tracker_id[i])
            conf = float(tracked.confidence[i]) if tracked.confidence is not None else 1.0
            box = tuple(round(float(v), 2) for v in tracked.xyxy[i])
            name = str(names[i]) if names is not None else str(int(tracked.class_id[i]))
            tr = st.tracks.get(tid)
            new = tr is None
            if tr is None:
                tr = _Track(tid, name, now, now, frame.index, box, conf)  # type: ignore[arg-type]
                st.tracks[tid] = tr
            tr.last_time, tr.last_frame, tr.box, tr.confidence = now, frame.index, box, conf  # type: ignore[assignment]
            if conf > tr.best_conf:
                tr.best_conf, tr.best_frame = conf, frame.index
                tr.best_crop = self._crop(frame.image, tracked.xyxy[i])
                tr.crop_ref = None
            if new:
                self.started += 1
                tr.last_emit = now
                events.append(self._event(frame.source_id, tr, "started", frame.index, now))
            elif now - tr.last_emit >= self.update_every_s:
                tr.last_emit = now
                events.append(self._event(frame.source_id, tr, "updated", frame.index, now))
        seen = {int(t) for t in tracked.tracker_id} if tracked.tracker_id is not None else set()
        for tid in [
            t for t, tr in st.tracks.items() if t not in seen and now - tr.last_time >= self.lost_after_s
        ]:
            tr = st.tracks.pop(tid)
            events.append(self._event(frame.source_id, tr, "ended", tr.last_frame, tr.last_time))
        events.extend(self._zones(st, frame, tracked))
        if self.per_frame_events:
            events.append(
                FrameDetections(
                    source=frame.source_id,
                    frame_index=frame.index,
                    pts=frame.pts,
                    time_base=frame.time_base,
                    time=now,
                    detections=tracked,
                    frame=frame,
                )
            )
        return events

    def on_end(self, source_id: str) -> Iterable[Event]:
        st = self._sources.pop(source_id, None)
        if st is None:
            return []
        return [
            self._event(source_id, tr, "ended", tr.last_frame, tr.last_time)
            for tr in sorted(st.tracks.values(), key=lambda t: t.track_id)
        ]

    def _zones(self, st: _SourceState, frame: Frame, tracked: Any) -> list[Event]:
        events: list[Event] = []
        names = tracked.data.get("class_name") if tracked.data else None
        for n, (name, zone, last) in enumerate(st.zones):
            inside = zone.trigger(tracked) if len(tracked) else np.zeros(0, bool)
            count = int(inside.sum())
            if count != last:
                classes: dict[str, int] = {}
                if names is not None:
                    for c in names[inside]:
                        classes[str(c)] = classes.get(str(c), 0) + 1
                st.zones[n] = (name, zone, count)
                events.append(
                    ZoneOccupancy(
                        source=frame.source_id,
                        zone=name,
                        count=count,
                        classes=classes,
                        frame_index=frame.index,
                        time=frame.seconds,
                    )
                )
        for name, line in st.lines:
            if not len(tracked):
                continue
            crossed_in, crossed_out = line.trigger(tracked)
            for direction, mask in (("in", crossed_in), ("out", crossed_out)):
                for i in np.flatnonzero(mask):
                    events.append(
                        LineCrossing(
                            source=frame.source_id,
                            line=name,
                            direction=direction,
                            track_id=int(tracked.tracker_id[i]),
                            class_name=str(names[i]) if names is not None else "",
                            frame_index=frame.index,
                            time=frame.seconds,
                            in_count=int(line.in_count),
                            out_count=int(line.out_count),
                        )
                    )
        return events

    def _crop(self, image: Any, box: np.ndarray) -> np.ndarray | None:
        if not isinstance(image, np.ndarray):
            return None
        h, w = image.shape[:2]
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 <= x1 or y2 <= y1:
            return None
        crop = image[y1:y2, x1:x2]
        scale = self.crop_max_side / max(crop.shape[:2])
        if scale < 1:
            crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))))
        return np.ascontiguousarray(crop)

    def _crop_ref(self, source: str, tr: _Track) -> str | None:
        if tr.crop_ref is not None or tr.best_crop is None:
            return tr.crop_ref
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(tr.best_crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
        )
        if not ok:
            return None
        if self.crops_dir is None:
            tr.crop_ref = "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()
        else:
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in source)
            path = self.crops_dir / safe / f"track{tr.track_id:06d}-f{tr.best_frame:08d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(buf.tobytes())
            tmp.replace(path)
            tr.crop_ref = str(path)
        return tr.crop_ref

    def _event(self, source: str, tr: _Track, phase: str, frame_index: int, time: float) -> TrackEvent:
        return TrackEvent(
            source=source,
            track_id=tr.track_id,
            phase=phase,
            class_name=tr.class_name,
            confidence=round(tr.best_conf, 4),
            box=tr.box,
            frame_index=frame_index,
            time=time,
            crop=self._crop_ref(source, tr),
        )


def track_event_fields() -> list[str]:
    """Field names of :class:`TrackEvent` (for docs and per-track JSONL)."""
    return [f.name for f in dataclasses.fields(TrackEvent)]
