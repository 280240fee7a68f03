"""Pipeline end to end on real decoding: order, status events, metrics/health/status over HTTP,
buffer policies under a slow consumer, failures surfacing with the source or sink named."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from framesift.analyzers.base import Analyzer
from framesift.config import PipelineConfig, parse_config
from framesift.engines.base import Embedder, ImageLike, as_images
from framesift.errors import SinkError, SourceError, WorkerError
from framesift.events import ErrorEvent, Event
from framesift.frame import Frame
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo, read_barcode
from framesift.services import Services
from framesift.sinks.base import Sink
from tests.serving import served


class Recorder(Analyzer):
    """Reads each frame's barcode; can hold the stage on its first frame until released."""

    name = "recorder"

    def __init__(self, hold: bool = False, emit: bool = False) -> None:
        self.seen: dict[str, list[int]] = {}
        self.ended: list[tuple[str, int]] = []
        self.holding = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.emit = emit

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        self.holding.set()
        self.release.wait(30)
        self.seen.setdefault(frame.source_id, []).append(read_barcode(frame.image))
        if self.emit:
            return [ErrorEvent(source=frame.source_id, stage="test", message=str(frame.index))]
        return ()

    def on_end(self, source_id: str) -> Iterable[Event]:
        self.ended.append((source_id, len(self.seen.get(source_id, []))))
        return ()


class ListSink(Sink):
    def __init__(self, name: str = "list") -> None:
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.closed = False

    def write(self, event: Event) -> None:
        self.events.append(event.to_dict())

    def close(self) -> None:
        self.closed = True


def config(
    *sources: dict[str, Any], sinks: list[dict[str, Any]] | None = None, **extra: Any
) -> PipelineConfig:
    return parse_config({"sources": list(sources), "sinks": sinks or [], "metrics": {"port": 0}, **extra})


def get(port: int | None, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode()


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_end_to_end_in_order_with_jsonl_metrics_health_status(
    make_clip: Callable[..., ClipInfo], tmp_path: Path
) -> None:
    clip = make_clip(segments=(40,))
    out = tmp_path / "events.jsonl"
    rec = Recorder(hold=True)
    cfg = config(
        {"type": "file", "path": str(clip.path), "id": "clip"}, sinks=[{"type": "jsonl", "path": str(out)}]
    )
    with served(cfg, analyzers=[rec]) as (p, port):
        assert rec.holding.wait(10)
        assert get(port, "/healthz") == (200, "ok\n")
        status = json.loads(get(port, "/status")[1])
        assert status["sources"]["clip"]["type"] == "file"
        samples = metric_samples(get(port, "/metrics")[1])
        assert samples[("framesift_frames_decoded_total", (("source", "clip"),))] >= 1
        assert samples[("framesift_source_up", (("source", "clip"),))] == 1.0  # blocked on a full buffer
        rec.release.set()
        p.join()
    assert rec.seen == {"clip": list(range(40))}
    assert rec.ended == [("clip", 40)]
    events = read_jsonl(out)
    states = [e["state"] for e in events if e["type"] == "source_status"]
    assert states[:2] == ["connecting", "up"] and "eof" in states
    st = p.status().to_dict()
    assert st["sources"]["clip"]["frames_decoded"] == 40 and st["sources"]["clip"]["frames_staged"] == 40
    assert st["sinks"]["jsonl"]["counts"]["written"] == len(events)


def _slow_consumer(make_clip: Callable[..., ClipInfo], on_full: str) -> tuple[Recorder, Pipeline, dict]:
    clip = make_clip(segments=(60,), width=160, height=120)
    rec = Recorder(hold=True)
    cfg = config(
        {"type": "file", "path": str(clip.path), "id": "c", "buffer": {"capacity": 4, "on_full": on_full}},
        stage={"max_batch": 1, "max_wait_ms": 0},
    )
    samples: dict = {}
    with served(cfg, analyzers=[rec]) as (p, port):
        assert rec.holding.wait(10)
        if on_full != "block":  # the producer runs ahead of the held consumer: wait for it to finish
            assert p.sources.runs["c"].worker.join(20)
            samples = metric_samples(get(port, "/metrics")[1])
        rec.release.set()
        p.join()
    return rec, p, samples


def test_slow_consumer_with_drop_oldest_counts_drops(make_clip: Callable[..., ClipInfo]) -> None:
    rec, p, samples = _slow_consumer(make_clip, "drop_oldest")
    got = rec.seen["c"]
    drops = p.sources.runs["c"].buffer.drops["buffer_full"]
    assert drops > 0 and len(got) + drops == 60
    assert got == sorted(got) and got[-1] == 59  # newest frames win, order kept
    key = ("framesift_frames_dropped_total", (("cause", "buffer_full"), ("source", "c"), ("stage", "buffer")))
    assert samples[key] == drops
    assert p.status().sources["c"].drops == {"buffer_full": drops}


def test_slow_consumer_with_block_loses_nothing(make_clip: Callable[..., ClipInfo]) -> None:
    rec, p, _ = _slow_consumer(make_clip, "block")
    assert rec.seen["c"] == list(range(60))
    assert sum(p.sources.runs["c"].buffer.drops.values()) == 0


def test_two_files_interleave_and_sinks_receive_status(make_clip: Callable[..., ClipInfo]) -> None:
    a, b = make_clip("a.mp4", segments=(30,)), make_clip("b.mkv", segments=(20,), codec="mjpeg")
    rec, sink = Recorder(), ListSink()
    cfg = config({"type": "file", "path": str(a.path)}, {"type": "file", "path": str(b.path)})
    Pipeline(cfg, analyzers=[rec], sinks=[sink]).run()
    assert rec.seen == {"a": list(range(30)), "b": list(range(20))}
    assert {e["source"] for e in sink.events if e["state"] == "eof"} == {"a", "b"}
    assert sink.closed


def test_duplicate_derived_ids_are_made_unique(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip(segments=(5,))
    rec = Recorder()
    cfg = config({"type": "file", "path": str(clip.path)}, {"type": "file", "path": str(clip.path)})
    Pipeline(cfg, analyzers=[rec]).run()
    assert sorted(rec.seen) == ["clip", "clip-2"]


def test_missing_file_raises_its_source_error_others_complete(
    make_clip: Callable[..., ClipInfo], tmp_path: Path
) -> None:
    clip = make_clip(segments=(20,))
    rec = Recorder()
    cfg = config(
        {"type": "file", "path": str(clip.path)}, {"type": "file", "path": str(tmp_path / "nope.mp4")}
    )
    p = Pipeline(cfg, analyzers=[rec])
    with pytest.raises(SourceError, match=r"nope\.mp4") as ei:
        p.run()
    assert ei.value.source == "nope" and ei.value.exit_code == 3
    assert rec.seen["clip"] == list(range(20))


def test_every_failed_file_is_named_at_the_end(
    make_clip: Callable[..., ClipInfo], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two broken inputs of three: the run exits with the first one's error and logs the other's,
    once; the good one completes."""
    clip = make_clip(segments=(20,))
    (tmp_path / "junk.mp4").write_text("not a video")
    cfg = config(
        {"type": "file", "path": str(tmp_path / "nope.mp4")},
        {"type": "file", "path": str(clip.path)},
        {"type": "file", "path": str(tmp_path / "junk.mp4")},
    )
    rec = Recorder()
    p = Pipeline(cfg, analyzers=[rec])
    with (
        caplog.at_level(logging.ERROR, logger="framesift.pipeline"),
        pytest.raises(SourceError, match="nope"),
    ):
        p.run()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and "junk.mp4" in logged[0] and "not a video file" in logged[0]
    with pytest.raises(SourceError, match="nope"):
        p.raise_errors()  # asked again: nothing logged twice
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert rec.seen["clip"] == list(range(20))


class Exploding(Sink):
    def __init__(self, exc: BaseException, name: str) -> None:
        self.exc, self.name = exc, name

    def write(self, event: Event) -> None:
        raise self.exc


def test_a_sink_that_raises_does_not_stop_the_pipeline_or_other_sinks(
    make_clip: Callable[..., ClipInfo], tmp_path: Path
) -> None:
    clip = make_clip(segments=(30,))
    out = tmp_path / "e.jsonl"
    rec = Recorder(emit=True)
    sinks: list[Sink] = [
        Exploding(SinkError("endpoint down", transient=False), "flaky"),
        Exploding(RuntimeError("bug in sink"), "buggy"),
    ]
    cfg = config({"type": "file", "path": str(clip.path)}, sinks=[{"type": "jsonl", "path": str(out)}])
    p = Pipeline(cfg, analyzers=[rec], sinks=sinks)
    with pytest.raises(WorkerError, match="sink buggy: RuntimeError: bug in sink") as ei:
        p.run()
    assert isinstance(ei.value.__cause__, RuntimeError) and ei.value.worker == "sink:buggy"
    assert rec.seen["clip"] == list(range(30))
    events = read_jsonl(out)
    assert [e["message"] for e in events if e["type"] == "error"] == [str(i) for i in range(30)]
    st = p.status().to_dict()["sinks"]
    assert st["flaky"]["counts"]["failed"] == len(events) and st["flaky"]["last_error"] == "endpoint down"
    hist = p.status().latency[("clip", "sink")]
    assert hist.count >= 30  # capture→sink latency measured for frame events


class Broken(Analyzer):
    name = "broken"

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        if frame.index == 3:
            raise ValueError("boom")
        return ()


def test_analyzer_failure_surfaces_named_and_stops(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip(segments=(200,), width=160, height=120)
    p = Pipeline(config({"type": "file", "path": str(clip.path)}), analyzers=[Broken()])
    with pytest.raises(WorkerError, match="analyzer broken failed on source clip frame 3") as ei:
        p.run()
    assert isinstance(ei.value.__cause__, ValueError)


def test_stop_drains_a_realtime_file_and_reports_stopped(
    make_clip: Callable[..., ClipInfo], tmp_path: Path
) -> None:
    clip = make_clip(segments=(250,), width=160, height=120)
    sink = ListSink()
    rec = Recorder()
    p = Pipeline(
        config({"type": "file", "path": str(clip.path), "realtime": True}), analyzers=[rec], sinks=[sink]
    )
    p.start()
    assert p.join(timeout=0.5) is False  # still running
    p.stop()
    p.join()
    got = rec.seen["clip"]
    assert 0 < len(got) < 250 and got == list(range(len(got)))
    assert sink.events[-1]["state"] == "stopped"
    assert not p.healthy()


def test_status_and_metrics_never_show_credentials(tmp_path: Path) -> None:
    cfg = config(
        {
            "type": "rtsp",
            "url": "rtsp://admin:s3cret@127.0.0.1:1/x",
            "open_timeout_s": 2,
            "reconnect": {"initial_s": 0.05, "give_up_after": 1},
        },
    )
    p = Pipeline(cfg)
    p.start()
    with Services(p, cfg.metrics) as services:
        text = get(services.port, "/metrics")[1] + get(services.port, "/status")[1]
    with pytest.raises(SourceError) as ei:
        p.join(timeout=30)
    assert "s3cret" not in text and "s3cret" not in str(ei.value)
    assert ei.value.exit_code == 3
    assert "127.0.0.1_1_x" in text or "127.0.0.1:1_x" in text


def test_embedder_required_when_an_analyzer_needs_one(make_clip: Callable[..., ClipInfo]) -> None:
    class NeedsEmb(Recorder):
        needs_embedding = True

    from framesift.errors import ConfigError

    with pytest.raises(ConfigError, match="need an embedder"):
        Pipeline(config({"type": "file", "path": "x.mp4"}), analyzers=[NeedsEmb()])


class MeanEmbedder(Embedder):
    """A real (tiny) embedder: the mean colour, L2-normalised."""

    name, dim = "mean", 3

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        self.batches.append(len(images))
        v = np.stack([img.mean(axis=(0, 1)) for img in as_images(images)]).astype(np.float32) + 1e-3
        return v / np.linalg.norm(v, axis=1, keepdims=True)


class EmbRecorder(Recorder):
    name = "emb"
    needs_embedding = True

    def __init__(self) -> None:
        super().__init__()
        self.embeddings: list[np.ndarray | None] = []

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        self.embeddings.append(embedding)
        return super().on_frame(frame, embedding)


def test_embedder_runs_on_batches_for_analyzers_that_need_it(make_clip: Callable[..., ClipInfo]) -> None:
    a, b = make_clip("a.mp4", segments=(30,)), make_clip("b.mp4", segments=(30,))
    emb, rec, plain = MeanEmbedder(), EmbRecorder(), Recorder()
    cfg = config(
        {"type": "file", "path": str(a.path)},
        {"type": "file", "path": str(b.path)},
        stage={"max_batch": 8, "max_wait_ms": 50},
    )
    Pipeline(cfg, embedder=emb, analyzers=[rec, plain]).run()
    assert sum(emb.batches) == 60 and max(emb.batches) <= 8 and max(emb.batches) > 1
    assert all(e is not None and e.shape == (3,) for e in rec.embeddings)
    assert rec.seen == plain.seen == {"a": list(range(30)), "b": list(range(30))}


class HoldsUntilEnd(Recorder):
    """Emits one event per source only when the source ends (as a scene detector's look-ahead does)."""

    def on_end(self, source_id: str) -> Iterable[Event]:
        super().on_end(source_id)
        return [ErrorEvent(source=source_id, stage="test", message="held until the end")]


def test_a_sources_last_status_follows_the_events_its_analyzers_held(
    make_clip: Callable[..., ClipInfo],
) -> None:
    clip = make_clip(segments=(30,), width=160, height=120)
    sink = ListSink()
    rec = HoldsUntilEnd(hold=True)  # the stage waits on the first frame while capture reaches eof
    p = Pipeline(
        config({"type": "file", "path": str(clip.path), "buffer": {"capacity": 64}}),
        analyzers=[rec],
        sinks=[sink],
    )
    p.start()
    assert rec.holding.wait(10)
    deadline = time.monotonic() + 10
    while p.sources.runs["clip"].state != "eof" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.sources.runs["clip"].state == "eof"  # capture is done, the stage has not ended it
    rec.release.set()
    p.join()
    p.stop()
    kinds = [(e["type"], e.get("state") or e.get("message")) for e in sink.events]
    assert kinds[-2:] == [("error", "held until the end"), ("source_status", "eof")]
