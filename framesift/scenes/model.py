"""A video's scenes, the boundary events that opened them, and the signal behind them.

Times come from frame timestamps, relative to the video's first frame (so a variable frame rate,
or a stream that starts at a non-zero timestamp, gives the times a player shows); frame numbers
count decoded frames from 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from framesift.events import SceneChange


@dataclass
class Scene:
    """Frames ``start`` (inclusive) to ``end`` (exclusive); ``boundary`` is the event that opened it."""

    number: int  # 1-based, as PySceneDetect numbers scenes; SceneChange.scene_id is the same number
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
    """Scenes of one video. ``fps`` is the nominal rate (for EDL timecodes), not used for times."""

    path: Path
    fps: Fraction
    frames: int
    width: int
    height: int
    scenes: list[Scene]
    events: list[SceneChange]
    mode: str = "pixel"
    # The cut signal: (frame index, time, distance to the previous frame, threshold in force).
    signal: list[tuple[int, float, float, float]] = field(default_factory=list)
    elapsed_s: float = 0.0
    thumbs: dict[int, bytes] = field(default_factory=dict, repr=False)  # scene start frame → JPEG
    source: str = ""

    @property
    def duration(self) -> float:
        return self.scenes[-1].end_time if self.scenes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": str(self.path),
            "source": self.source,
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
    events: list[SceneChange],
    frames: int,
    *,
    start_time: float,
    end_time: float,
    labels: dict[int, str] | None = None,
) -> list[Scene]:
    """Cut ``[0, frames)`` at each event's ``frame_index``; a scene starts at its first frame's time
    (the event's ``time``) and ends where the next starts, the last one at ``end_time`` (the end of
    the last frame). Times are relative to ``start_time`` (the first frame's). ``labels`` name
    scenes by their first frame."""
    by_index = {e.frame_index: e for e in events if 0 < e.frame_index < frames}
    bounds = sorted(by_index)
    starts = [0, *bounds]
    ends = [*bounds, frames]
    times = [0.0, *(max(0.0, by_index[b].time - start_time) for b in bounds)]
    last = max(times[-1], end_time - start_time)
    out = []
    for n, (s, e) in enumerate(zip(starts, ends, strict=True), start=1):
        out.append(
            Scene(
                number=n,
                start=s,
                end=e,
                start_time=times[n - 1],
                end_time=times[n] if n < len(times) else last,
                boundary=by_index.get(s),
                label=(labels or {}).get(s),
            )
        )
    return out
