"""The result of file-mode detection: scenes, the boundary events, and the signal behind them."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from framesift.events import SceneChange


@dataclass
class Scene:
    """Frames ``start`` (inclusive) to ``end`` (exclusive); ``boundary`` is the event that opened it."""

    number: int  # 1-based
    start: int
    end: int
    start_time: float
    end_time: float
    boundary: SceneChange | None = None
    label: str | None = None
    thumbnail: str | None = None  # path relative to the output folder, set by the writers

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time


@dataclass
class SceneList:
    """Scenes of one video file."""

    path: Path
    fps: Fraction
    frames: int
    width: int
    height: int
    scenes: list[Scene]
    events: list[SceneChange]
    mode: str = "pixel"
    # The cut signal per decided frame: (index, distance to previous frame, threshold in force).
    signal: list[tuple[int, float, float]] = field(default_factory=list)
    elapsed_s: float = 0.0
    thumbs: dict[int, bytes] = field(default_factory=dict, repr=False)  # scene start frame → JPEG

    @property
    def duration(self) -> float:
        return self.frames / float(self.fps) if self.fps else 0.0

    def frame_time(self, index: int) -> float:
        return index / float(self.fps) if self.fps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": str(self.path),
            "fps": f"{self.fps.numerator}/{self.fps.denominator}",
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "duration_s": round(self.duration, 3),
            "mode": self.mode,
            "scenes": [
                {
                    "scene": s.number,
                    "start_frame": s.start,
                    "end_frame": s.end,
                    "start_time": round(s.start_time, 3),
                    "end_time": round(s.end_time, 3),
                    "frames": s.frames,
                    "label": s.label,
                    "thumbnail": s.thumbnail,
                    "transition": None
                    if s.boundary is None
                    else {
                        "kind": s.boundary.kind,
                        "frame": s.boundary.frame_index,
                        "start": s.boundary.transition_start,
                        "end": s.boundary.transition_end,
                        "score": s.boundary.score,
                    },
                }
                for s in self.scenes
            ],
            "events": [e.to_dict() for e in self.events],
        }


def scenes_from_events(
    events: list[SceneChange], frames: int, fps: Fraction, labels: dict[int, str] | None = None
) -> list[Scene]:
    """Cut the ``[0, frames)`` range at each event's ``frame_index``."""
    bounds = sorted({e.frame_index for e in events if 0 < e.frame_index < frames})
    by_index = {e.frame_index: e for e in events}
    starts = [0, *bounds]
    ends = [*bounds, frames]
    out = []
    for n, (s, e) in enumerate(zip(starts, ends, strict=True), start=1):
        out.append(
            Scene(
                number=n,
                start=s,
                end=e,
                start_time=s / float(fps),
                end_time=e / float(fps),
                boundary=by_index.get(s),
                label=(labels or {}).get(n),
            )
        )
    return out
