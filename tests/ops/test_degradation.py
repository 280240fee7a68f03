"""Graceful degradation: an embedder that fails drops that batch's frames with a counted cause
(``engine_error``), sends an ErrorEvent to the sinks, keeps the pipeline up, and is rebuilt (when
the pipeline builds it) after a backoff; a permanently broken engine is not called in a loop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from framesift.analyzers.base import Analyzer
from framesift.config import parse_config
from framesift.engines.base import Embedder, ImageLike, as_images
from framesift.errors import EngineError
from framesift.events import Event
from framesift.frame import Frame
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo, read_barcode
from tests.serving import served
from tests.test_pipeline import ListSink, get, metric_samples


class Flaky(Embedder):
    """Fails its first ``fails`` calls (counted across rebuilt instances via ``shared``)."""

    name = "flaky"
    dim = 4

    def __init__(self, shared: dict[str, int], fails: int) -> None:
        self.shared, self.fails = shared, fails
        self.lock = threading.Lock()
        shared["built"] = shared.get("built", 0) + 1

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        with self.lock:
            self.shared["calls"] = self.shared.get("calls", 0) + 1
            if self.shared["calls"] <= self.fails:
                raise EngineError("CUDA error: an illegal memory access was encountered", engine=self.name)
        out = np.zeros((len(images), self.dim), np.float32)
        out[:, 0] = 1.0
        assert len(as_images(images)) == len(images)
        return out


class NeedsEmbedding(Analyzer):
    name = "needs_embedding"
    needs_embedding = True

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        assert embedding is not None and embedding.shape == (4,)
        self.seen.append(read_barcode(frame.image))
        return ()


def _cfg(path: str, realtime: bool) -> object:
    return parse_config(
        {
            "sources": [{"type": "file", "id": "clip", "path": path, "realtime": realtime}],
            "stage": {"max_batch": 4, "max_wait_ms": 5},
            "metrics": {"port": 0},
        }
    )


def test_engine_fails_n_times_then_is_rebuilt(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip(segments=(60,), width=160, height=120)
    shared: dict[str, int] = {}
    rec, sink = NeedsEmbedding(), ListSink()
    p = Pipeline(
        _cfg(str(clip.path), realtime=True),  # type: ignore[arg-type]
        embedder_factory=lambda: Flaky(shared, fails=3),
        engine_backoff_s=(0.05, 0.2),
        analyzers=[rec],
        sinks=[sink],
    )
    with p:
        p.join()
        status = p.status().to_dict()
    dropped = status["sources"]["clip"]["drops"]["engine_error"]
    assert dropped > 0 and len(rec.seen) + dropped == 60  # every frame either analysed or counted
    assert rec.seen == sorted(rec.seen) and rec.seen[-1] == 59  # it came back and stayed up
    assert shared["built"] >= 4  # built once, rebuilt after each failure
    errors = [e for e in sink.events if e["type"] == "error"]
    assert len(errors) == 3 and all(e["stage"] == "engine" and e["source"] == "clip" for e in errors)
    assert "illegal memory access" in errors[0]["message"] and sum(e["count"] for e in errors) <= dropped
    assert status["stage"]["engine"] == {
        "name": "flaky",
        "state": "ok",
        "errors": 3,
        "consecutive_failures": 0,
    }
    assert status["stage"]["error"] is None


def test_a_broken_engine_does_not_spin_and_metrics_count_the_drops(
    make_clip: Callable[..., ClipInfo],
) -> None:
    clip = make_clip(segments=(50,), width=160, height=120)  # 2 s in real time
    shared: dict[str, int] = {}
    given = Flaky(shared, fails=10**9)  # given, not built: retried (not rebuilt) after the backoff
    sink = ListSink()
    with served(
        _cfg(str(clip.path), realtime=True),  # type: ignore[arg-type]
        embedder=given,
        engine_backoff_s=(0.2, 0.8),
        analyzers=[NeedsEmbedding()],
        sinks=[sink],
    ) as (p, port):
        ready = threading.Event()

        def check() -> None:
            samples = metric_samples(get(port, "/metrics")[1])
            key = (
                "framesift_frames_dropped_total",
                (("cause", "engine_error"), ("source", "clip"), ("stage", "engine")),
            )
            assert samples[key] >= 1
            assert p.healthy()
            ready.set()

        while not ready.is_set() and p.running:
            if p.status().sources["clip"].drops.get("engine_error"):
                check()
            threading.Event().wait(0.05)
        p.join()
        status = p.status().to_dict()
    assert ready.is_set()
    assert status["sources"]["clip"]["drops"]["engine_error"] == 50  # all dropped, all counted
    # backoff 0.2, 0.4, 0.8, 0.8...: about 4 attempts in 2 s, never one per batch (13 batches)
    assert shared["built"] == 1 and shared["calls"] <= 6
    assert len([e for e in sink.events if e["type"] == "error"]) == shared["calls"]
