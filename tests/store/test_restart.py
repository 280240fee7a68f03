"""A restart reloads the memory bank from the store: the same footage is not kept again."""

from __future__ import annotations

from pathlib import Path

from framesift.analyzers.collector import Collector, CollectorConfig
from framesift.engines.models.pixel import PixelEmbedder
from framesift.sinks.frame_store import FrameStoreSink
from framesift.store.index import FrameStore
from tests.store.helpers import decode, write_station_clip


def collect(clip: Path, store_dir: Path, *, seed: bool) -> int:
    emb = PixelEmbedder()
    cfg = CollectorConfig(seed_from=str(store_dir) if seed else None, cross_source=True)
    collector = Collector.from_config(cfg, emb)
    sink = FrameStoreSink(FrameStore(store_dir))
    sink.open()
    try:
        for f in decode(clip, "dock"):
            for ev in collector.on_frame(f, emb.embed_images([f])[0]):
                sink.write(ev)
    finally:
        sink.close()
    return sink.counts["written"]


def test_restart_keeps_no_duplicates(tmp_path: Path) -> None:
    clip = tmp_path / "c.mp4"
    write_station_clip(clip, [(1, 30, False), (2, 60, True), (3, 30, False), (4, 30, False)])
    store = tmp_path / "store"
    first = collect(clip, store, seed=True)  # empty store: nothing to reload
    assert first >= 4
    assert collect(clip, store, seed=True) == 0  # restarted on the same footage: nothing new
    with FrameStore(store, readonly=True) as s:
        assert s.count() == first
    # the check can fail: without reloading the bank the same frames are kept again
    assert collect(clip, store, seed=False) == first


def test_seed_ignores_a_store_of_another_model(tmp_path: Path) -> None:
    import numpy as np

    with FrameStore(tmp_path) as s:
        s.add(id="x", source="dock", image=np.zeros((8, 8, 3), np.uint8), wallclock=1e9,
              embedding=np.ones(4, np.float32) / 2, model="clip:ViT-B-32")  # fmt: skip
    c = Collector(CollectorConfig(), PixelEmbedder())
    assert c.seed_from_store(str(tmp_path)) == 0 and c.bank_sizes() == {}
