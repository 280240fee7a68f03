"""The frame_store sink behind a real SinkWorker: writes kept frames, ignores the rest, survives disk full."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from framesift.analyzers.collector import Collector, CollectorConfig
from framesift.events import FrameKept, FramePayload, SourceStatus
from framesift.sinks.base import SinkWorker
from framesift.sinks.frame_store import FrameStoreSink, FrameStoreSinkConfig
from framesift.store.index import FrameStore
from tests.store.helpers import TinyEmbedder, assert_consistent, decode, tiny_disk, write_station_clip  # noqa: F401 - fixture


def kept_event(i: int, img: np.ndarray) -> FrameKept:
    return FrameKept(
        source="cam", wallclock=1_767_225_600.0 + i, frame_index=i, pts=i, time_base=Fraction(1, 25), time=i / 25,
        reason="novel", scores={"novelty": 1.0}, id=f"cam-{i:06d}",
        payload=FramePayload(img, np.ones(4, np.float32) / 2, "tiny"),
    )  # fmt: skip


def test_collector_to_store_through_a_worker(tmp_path: Path) -> None:
    clip = tmp_path / "c.mp4"
    write_station_clip(clip, [(1, 20, False), (2, 20, True), (3, 20, False)])
    emb = TinyEmbedder()
    collector = Collector(CollectorConfig(shots=False, novelty_threshold=0.15), emb)  # every frame judged
    cfg = FrameStoreSinkConfig(path=str(tmp_path / "store"), format="webp", quality=70)
    sink = FrameStoreSink.from_config(cfg)
    worker = SinkWorker(sink, queue_size=cfg.queue_size)
    worker.start()
    expected = []
    try:
        worker.submit(SourceStatus(source="cam", state="up"))
        worker.submit(FrameKept(source="cam", frame_index=0, pts=0, time_base=Fraction(1, 25), time=0.0,
                                reason="novel"))  # fmt: skip
        for f in decode(clip):
            for ev in collector.on_frame(f, emb.embed_images([f])[0]):
                expected.append(ev)
                assert worker.submit(ev)
    finally:
        worker.stop(drain=True)
    assert len(expected) >= 3
    assert all(e.payload.image is None for e in expected)  # the store took the images: nothing pins them
    assert sink.counts["written"] == len(expected) and sink.counts["no_image"] == 1
    with FrameStore(tmp_path / "store", readonly=True) as store:
        recs = store.records()
        assert [r.id for r in recs] == [e.id for e in expected]  # type: ignore[attr-defined]
        assert all(r.path.endswith(".webp") and r.model == "tiny" for r in recs)
        assert recs[0].reason == "novel" and recs[0].scores["novelty"] == 1.0
    assert_consistent(tmp_path / "store")


def test_disk_full_is_reported_counted_and_delivery_goes_on(tiny_disk: Path) -> None:  # noqa: F811
    errors: list[str] = []
    ballast = tiny_disk / "ballast"  # other data on the disk, which an operator removes later
    ballast.write_bytes(b"\0" * 400_000)
    sink = FrameStoreSink(FrameStore(tiny_disk / "store", format="png", png_compression=0))
    worker = SinkWorker(sink, queue_size=128, on_error=lambda name, exc: errors.append(f"{name}: {exc}"))
    worker.start()
    rng = np.random.default_rng(0)
    try:
        t0 = time.monotonic()
        for i in range(40):  # ~57 KB each on a 1 MiB disk
            assert worker.submit(kept_event(i, rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)))
        assert time.monotonic() - t0 < 5  # submit never blocks on a full disk
        deadline = time.monotonic() + 30
        while worker.backlog and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert sink.counts["disk_full"] >= 10 and sink.counts["written"] >= 5
        assert worker.counts["failed"] == sink.counts["disk_full"]
        assert errors and "disk full" in errors[0] and "frame_store" in errors[0]
        # room again: the same worker keeps delivering
        ballast.unlink()
        assert worker.submit(kept_event(100, rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)))
    finally:
        worker.stop(drain=True)
    assert worker.error is None
    with FrameStore(tiny_disk / "store", readonly=True) as store:
        assert store.records()[-1].frame_index == 100
    assert_consistent(tiny_disk / "store")
