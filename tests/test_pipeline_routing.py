"""Analyzers read each other's outputs: a consumer gets every event of the classes it consumes,
before the sinks, producers first — for each frame and at a source's end."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from framesift.analyzers.base import Analyzer
from framesift.analyzers.scene_change import SceneChangeAnalyzer, SceneChangeConfig
from framesift.events import ErrorEvent, Event, SceneChange
from framesift.frame import Frame
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo
from tests.test_pipeline import ListSink, config


class Boundaries(Analyzer):
    """Consumes scene changes (listed before their producer on purpose) and answers each one."""

    name = "boundaries"
    consumes = (SceneChange,)

    def __init__(self) -> None:
        self.heard: list[int] = []
        self.frames_when_heard: list[int] = []
        self.last_frame = -1
        self.ended_after: list[int] = []

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        self.last_frame = frame.index
        return ()

    def on_event(self, event: Event) -> Iterable[Event]:
        assert isinstance(event, SceneChange)
        self.heard.append(event.frame_index)
        self.frames_when_heard.append(self.last_frame)
        return [
            ErrorEvent(source=event.source, stage="analyzer:boundaries", message=f"heard {event.frame_index}")
        ]

    def on_end(self, source_id: str) -> Iterable[Event]:
        self.ended_after = list(self.heard)
        return ()


def test_a_consumer_hears_the_producers_events_before_the_sinks(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip(segments=(30, 30, 30), width=160, height=120)
    consumer = Boundaries()
    sink = ListSink()
    Pipeline(
        config({"type": "file", "path": str(clip.path), "id": "c"}),
        analyzers=[consumer, SceneChangeAnalyzer(SceneChangeConfig())],
        sinks=[sink],
    ).run()
    assert consumer.heard == [30, 60] == list(clip.cuts)
    assert consumer.ended_after == [30, 60]  # the producer's end came first
    # it heard each boundary after seeing a frame past it (producers run first for each frame)
    assert all(seen >= cut for seen, cut in zip(consumer.frames_when_heard, consumer.heard, strict=True))
    order = [
        (e["type"], e.get("frame_index") or e.get("message"))
        for e in sink.events
        if e["type"] != "source_status"
    ]
    assert order == [("scene_change", 30), ("error", "heard 30"), ("scene_change", 60), ("error", "heard 60")]
