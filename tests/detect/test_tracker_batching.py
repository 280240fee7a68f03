"""The tracker detects the stage's whole batch (frames of every source) at once, with the results of
per-frame detection; a detector failure degrades (ErrorEvent naming the analyzer and frames, backoff,
retry) instead of stopping the pipeline."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest

from framesift.analyzers.base import Analyzer
from framesift.analyzers.tracking import FrameDetections, TrackingAnalyzer
from framesift.config import parse_config
from framesift.engines.base import Detector, ImageLike
from framesift.engines.cache import EngineCache
from framesift.events import ErrorEvent, Event, TrackEvent
from framesift.frame import Frame
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo
from framesift.sinks.base import Sink
from tests.detect.conftest import IMGSZ, hashed_text_encoder

pytest.importorskip("ultralytics")
pytest.importorskip("trackers")

PROMPTS = ["person", "forklift"]


def _recording_yolo_world() -> type:
    from framesift.engines.models.yolo_world import YoloWorld

    class RecordingYoloWorld(YoloWorld):
        """The real detector; records which frames each ``detect`` call got and what it returned."""

        calls: list[list[tuple[str, int]]]
        results: dict[tuple[str, int], Any]

        def reset(self) -> None:
            self.calls, self.results = [], {}

        def detect(self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None) -> list[Any]:
            out = super().detect(images, prompts)
            keys = [(f.source_id, f.index) for f in images if isinstance(f, Frame)]
            self.calls.append(keys)
            self.results.update(zip(keys, out, strict=True))
            return out

    return RecordingYoloWorld


@pytest.fixture(scope="module")
def detector(world_model, engine_cache: EngineCache) -> Any:  # type: ignore[no-untyped-def]
    det = _recording_yolo_world()(
        world_model,
        imgsz=IMGSZ,
        cache=engine_cache,
        device="cpu",
        precision="fp32",  # results must not depend on this machine's bf16 support
        threads=1,
        conf=0.05,
        max_batch=4,
        prompts=PROMPTS,
        text_encoder=hashed_text_encoder,
    )
    det.reset()
    yield det
    det.close()


class ListSink(Sink):
    name = "list"

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, event: Event) -> None:
        self.events.append(event)


def _pipeline(clips: dict[str, ClipInfo], analyzer: TrackingAnalyzer, sink: Sink) -> Pipeline:
    cfg = parse_config(
        {
            "sources": [{"type": "file", "id": sid, "path": str(c.path)} for sid, c in clips.items()],
            "stage": {"max_batch": 8, "max_wait_ms": 200},
            "metrics": {"enabled": False},
        }
    )
    return Pipeline(cfg, analyzers=[analyzer], sinks=[sink])


def test_pipeline_batches_detection_across_sources(make_clip: Callable[..., ClipInfo], detector: Any) -> None:
    clips = {
        sid: make_clip(f"{sid}.mp4", segments=(16,), width=160, height=120, fps=Fraction(25), seed=seed)
        for sid, seed in (("a", 0), ("b", 1))
    }
    detector.reset()
    sink = ListSink()
    p = _pipeline(clips, TrackingAnalyzer(detector, lost_after_s=0.2), sink)
    assert p.stage.batcher.max_batch == 8  # a batched analyzer turns batching on without an embedder
    p.run()
    every = {(sid, i) for sid, c in clips.items() for i in range(c.frames)}
    detected = [k for call in detector.calls for k in call]
    assert sorted(detected) == sorted(every)  # each frame detected once: on_frame reused the batch
    assert any(len({sid for sid, _ in call}) > 1 for call in detector.calls), detector.calls
    assert max(len(call) for call in detector.calls) > 1
    tracks = [e for e in sink.events if isinstance(e, TrackEvent)]
    assert {e.source for e in tracks if e.phase == "started"} == {"a", "b"}
    for sid in clips:
        started = {e.track_id for e in tracks if e.source == sid and e.phase == "started"}
        ended = {e.track_id for e in tracks if e.source == sid and e.phase == "ended"}
        assert started == ended


def _decode(clip: ClipInfo, sid: str) -> list[Frame]:
    with av.open(str(clip.path)) as c:
        return [
            Frame(sid, i, i, Fraction(1, 25), 0.0, f.to_ndarray(format="rgb24"))
            for i, f in enumerate(c.decode(video=0))
        ]


def _rows(events: list[Event]) -> list[tuple[str, int, list[tuple[str, list[float], float]]]]:
    out = []
    for e in events:
        if isinstance(e, FrameDetections):
            det = e.detections
            boxes = [
                (str(det.data["class_name"][i]), det.xyxy[i].tolist(), float(det.confidence[i]))
                for i in range(len(det))
            ]
            out.append((e.source, e.frame_index, sorted(boxes)))
    return out


def test_batched_detections_equal_per_frame_detections(
    make_clip: Callable[..., ClipInfo], detector: Any
) -> None:
    sizes = {"a": (160, 120), "b": (160, 120), "c": (128, 96)}  # one batch of mixed frame sizes
    frames_by_source = {
        sid: _decode(make_clip(f"{sid}.mp4", segments=(6,), width=w, height=h, seed=n), sid)
        for n, (sid, (w, h)) in enumerate(sizes.items())
    }
    batch = [f for group in zip(*frames_by_source.values(), strict=True) for f in group]  # interleaved

    detector.reset()
    batched = TrackingAnalyzer(detector, per_frame_events=True)
    batched.on_batch(batch)
    batched_events = [e for f in batch for e in batched.on_frame(f)]
    batched_calls, batched_results = detector.calls, detector.results
    # one detect call per frame size (the detector runs it in chunks of its max_batch, 4)
    assert sorted(len(c) for c in batched_calls) == [6, 12]
    assert len(batched_results) == len(batch)

    detector.reset()
    single = TrackingAnalyzer(detector, per_frame_events=True)
    single_events = [e for f in batch for e in single.on_frame(f)]
    assert all(len(c) == 1 for c in detector.calls) and len(detector.calls) == len(batch)

    found = 0
    for key, one in detector.results.items():
        many = batched_results[key]
        assert len(many) == len(one), key
        found += len(one)
        order_one, order_many = np.lexsort(one.xyxy.T), np.lexsort(many.xyxy.T)
        np.testing.assert_allclose(many.xyxy[order_many], one.xyxy[order_one], atol=1e-2)
        np.testing.assert_allclose(many.confidence[order_many], one.confidence[order_one], atol=1e-4)
        assert list(many.data["class_name"][order_many]) == list(one.data["class_name"][order_one])
    assert found > 0  # the comparison saw boxes

    rows_b, rows_s = _rows(batched_events), _rows(single_events)
    assert [r[:2] for r in rows_b] == [r[:2] for r in rows_s] == [(f.source_id, f.index) for f in batch]
    for (_, _, b), (_, _, s) in zip(rows_b, rows_s, strict=True):
        assert [r[0] for r in b] == [r[0] for r in s]
        for rb, rs in zip(b, s, strict=True):
            np.testing.assert_allclose(rb[1], rs[1], atol=1e-2)


class FlakyDetector(Detector):
    """Fails its first ``fails`` calls (a lost device), then finds one box on every image."""

    name = "flaky"

    def __init__(self, fails: int) -> None:
        self.fails, self.calls = fails, 0

    def detect(self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None) -> list[Any]:
        import supervision as sv

        self.calls += 1
        if self.calls <= self.fails:
            raise RuntimeError("device lost")
        box = np.array([[10.0, 10.0, 60.0, 60.0]], np.float32)
        one = {"xyxy": box, "confidence": np.array([0.9], np.float32), "class_id": np.array([0])}
        return [sv.Detections(**one, data={"class_name": np.array(["person"])}) for _ in images]


class Probe(Analyzer):
    name = "probe"

    def __init__(self) -> None:
        self.frames = 0

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        self.frames += 1
        return ()


def test_detector_failure_degrades_names_the_analyzer_and_recovers(
    make_clip: Callable[..., ClipInfo],
) -> None:
    clips = {sid: make_clip(f"{sid}.mp4", segments=(40,), width=160, height=120) for sid in ("a", "b")}
    detector, probe, sink = FlakyDetector(fails=2), Probe(), ListSink()
    tracker = TrackingAnalyzer(detector, lost_after_s=0.2)
    cfg = parse_config(
        {
            "sources": [
                {"type": "file", "id": sid, "path": str(c.path), "realtime": True} for sid, c in clips.items()
            ],
            "stage": {"max_batch": 4, "max_wait_ms": 20},
            "metrics": {"enabled": False},
        }
    )
    p = Pipeline(cfg, analyzers=[tracker, probe], sinks=[sink], engine_backoff_s=(0.05, 0.2))
    p.run()  # no WorkerError: the pipeline stays up
    errors = [e for e in sink.events if isinstance(e, ErrorEvent)]
    assert len({e.message for e in errors}) == 2  # one per failed batch, one event per source in it
    assert all(e.stage == "analyzer:tracker" for e in errors)
    assert all(re.search(r"failed on a batch of \d+ frames \(source ", e.message) for e in errors)
    assert all("RuntimeError: device lost" in e.message for e in errors)
    assert probe.frames == 80  # the other analyzer saw every frame
    assert detector.calls > 2  # retried after the backoff...
    started = {e.source for e in sink.events if isinstance(e, TrackEvent) and e.phase == "started"}
    assert started == {"a", "b"}  # ...and tracking resumed on both sources
    health = p.status().to_dict()["stage"]["batched_analyzers"]
    assert health == [{"name": "tracker", "state": "ok", "errors": 2, "consecutive_failures": 0}]
