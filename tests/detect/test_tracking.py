"""Tracking: synthetic moving boxes → one track per object with one start and one end event each."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import supervision as sv

from framesift.analyzers.tracking import LineConfig, ZoneConfig
from framesift.events import TrackEvent
from framesift.frame import Frame

pytest.importorskip("trackers")

W, H = 320, 240


def _frame(i: int, source: str = "cam") -> Frame:
    img = np.full((H, W, 3), 40, np.uint8)
    return Frame(source, i, i, Fraction(1, 30), 0.0, img)


def _boxes(i: int) -> sv.Detections:
    """Object A (person) moves right over frames 0-79; object B (forklift) moves down over 10-39."""
    rows, conf, cls = [], [], []
    if i < 80:
        x = 10 + 3 * i
        rows.append([x, 100, x + 40, 160])
        conf.append(0.9 if i != 40 else 0.95)
        cls.append(0)
    if 10 <= i < 40:
        y = 5 + 2 * (i - 10)
        rows.append([200, y, 250, y + 30])
        conf.append(0.8)
        cls.append(1)
    names = np.array(["person", "forklift"])[np.array(cls, int)] if cls else np.array([], str)
    return sv.Detections(
        xyxy=np.array(rows, np.float32).reshape(-1, 4),
        confidence=np.array(conf, np.float32),
        class_id=np.array(cls, int),
        data={"class_name": names},
    )


def test_one_track_per_object_one_start_and_end_each(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from framesift.analyzers.tracking import TrackingAnalyzer

    an = TrackingAnalyzer(update_every_s=1.0, lost_after_s=0.5, crops_dir=tmp_path / "crops")
    events = []
    for i in range(90):
        events += an.update(_frame(i), _boxes(i))
    events += list(an.on_end("cam"))
    tracks = [e for e in events if isinstance(e, TrackEvent)]
    by_id: dict[int, list[TrackEvent]] = {}
    for e in tracks:
        by_id.setdefault(e.track_id, []).append(e)
    assert len(by_id) == 2, {k: [e.phase for e in v] for k, v in by_id.items()}
    classes = {}
    for _tid, evs in by_id.items():
        phases = [e.phase for e in evs]
        assert phases[0] == "started" and phases[-1] == "ended"
        assert phases.count("started") == 1 and phases.count("ended") == 1
        classes[evs[0].class_name] = evs
    person, forklift = classes["person"], classes["forklift"]
    # person lives 80 frames (2.6 s) at 30 fps: 'updated' at most every 1 s → 2 updates
    assert [e.phase for e in person].count("updated") == 2
    assert [e.phase for e in forklift].count("updated") == 0
    assert forklift[-1].frame_index == 39  # ended at its last sighting, detected 0.5 s later
    assert person[-1].confidence == pytest.approx(0.95, abs=1e-3)  # best-scoring frame
    crop = person[-1].crop
    assert crop is not None and crop.endswith("-f00000040.jpg")
    img = __import__("cv2").imread(crop)
    assert img is not None and img.shape[:2] == (60, 40)
    assert all(e.to_dict()["type"] == "track" for e in tracks)


def test_sources_are_tracked_apart_and_crop_inline() -> None:
    from framesift.analyzers.tracking import TrackingAnalyzer

    an = TrackingAnalyzer(lost_after_s=0.5)
    events = []
    for i in range(20):
        events += an.update(_frame(i, "a"), _boxes(i))
        events += an.update(_frame(i, "b"), _boxes(i))
    starts = [e for e in events if isinstance(e, TrackEvent) and e.phase == "started"]
    assert sorted(e.source for e in starts) == ["a", "a", "b", "b"]
    assert starts[0].crop is not None and starts[0].crop.startswith("data:image/jpeg;base64,")
    assert list(an.on_end("a")) and list(an.on_end("b")) and not list(an.on_end("c"))


def test_line_crossing_and_zone_occupancy() -> None:
    from framesift.analyzers.tracking import FrameDetections, LineCrossing, TrackingAnalyzer, ZoneOccupancy

    an = TrackingAnalyzer(
        lost_after_s=0.5,
        per_frame_events=True,
        lines=[LineConfig(name="gate", start=(160, 0), end=(160, 240))],
        zones=[ZoneConfig(name="right", polygon=[(170, 0), (319, 0), (319, 239), (170, 239)])],
    )
    events = []
    for i in range(80):
        events += an.update(_frame(i), _boxes(i))
    crossings = [e for e in events if isinstance(e, LineCrossing)]
    assert len(crossings) == 1 and crossings[0].class_name == "person"
    assert crossings[0].in_count + crossings[0].out_count == 1
    occ = [e for e in events if isinstance(e, ZoneOccupancy)]
    assert occ and max(e.count for e in occ) >= 1
    per_frame = [e for e in events if isinstance(e, FrameDetections)]
    assert len(per_frame) == 80
    d = per_frame[20].to_dict()
    assert d["type"] == "detections" and len(d["detections"]) == 2 and "frame" not in d
    assert {r["class_name"] for r in d["detections"]} == {"person", "forklift"}
