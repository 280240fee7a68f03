"""``framesift collect`` and ``framesift search`` end to end: real decoding, pipeline, store, JSONL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framesift.analyzers.collector import Collector, CollectorConfig
from framesift.cli import main
from framesift.config import parse_config
from framesift.engines.models.pixel import PixelEmbedder
from framesift.pipeline import Pipeline
from framesift.sinks.frame_store import FrameStoreSink
from framesift.sinks.jsonl import JsonlSink
from framesift.store.index import FrameStore
from tests.store.helpers import assert_consistent, tiny_disk, write_station_clip  # noqa: F401 - fixture

PLAN = [(1, 25, False), (2, 50, True), (3, 25, False), (4, 25, False)]


def events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_collect_a_file_then_search_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "dock.mp4"
    write_station_clip(clip, PLAN)
    out = tmp_path / "out"
    rc = main(["collect", str(clip), "-o", str(out), "--model", "pixel", "--budget", "30/m", "--min-interval",
               "0.2s", "--no-progress"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "framesift collect: kept" in err
    evs = events(out / "events.jsonl")
    kept = [e for e in evs if e["type"] == "frame_kept"]
    assert len(kept) >= 4 and {"up", "eof"} <= {e["state"] for e in evs if e["type"] == "source_status"}
    assert all("image" not in e and e["reason"] for e in kept)
    with FrameStore(out / "store", readonly=True) as store:
        assert [r.id for r in store.records()] == [e["id"] for e in kept]
        assert (
            store.models() == ["pixel"] and json.loads(store.get_meta("engine") or "{}")["model"] == "pixel"
        )
    assert_consistent(out / "store")

    # restart on the same footage: the bank is reloaded from the store, nothing is kept twice
    assert main(["collect", str(clip), "-o", str(out), "--model", "pixel", "--no-progress"]) == 0
    assert len([e for e in events(out / "events.jsonl") if e["type"] == "frame_kept"]) == len(kept)

    # search by example image (any kept frame finds itself first), with an HTML gallery
    first = out / "store" / FrameStore(out / "store", readonly=True).open().records()[2].path
    html = tmp_path / "g.html"
    capsys.readouterr()
    assert main(["search", "--store", str(out), "--image", str(first), "-k", "3", "--html", str(html)]) == 0
    printed = capsys.readouterr().out
    assert str(first) in printed.splitlines()[1] and html.read_text().count("<img") == 3
    # text on a pixel store: a clear usage error
    assert main(["search", "a forklift", "--store", str(out)]) == 2
    assert "no text tower" in capsys.readouterr().err


def test_collect_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "c.mp4"
    write_station_clip(clip, [(1, 5, False)])
    assert (
        main(["collect", str(clip), "-o", str(tmp_path / "o"), "--model", "pixel", "--prompt", "a forklift"])
        == 2
    )
    assert "text tower" in capsys.readouterr().err
    assert main(["collect", str(clip), "-o", str(tmp_path / "o"), "--budget", "lots"]) == 2
    assert "invalid budget" in capsys.readouterr().err
    assert main(["collect", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o"), "--model", "pixel",
                 "--no-progress"]) == 3  # fmt: skip
    assert "missing.mp4" in capsys.readouterr().err
    for flag, value in (("--budget", "0"), ("--fps", "0"), ("--novelty", "5")):  # named as typed
        assert main(["collect", str(clip), "-o", str(tmp_path / "o"), flag, value]) == 2
        assert capsys.readouterr().err.startswith(f"framesift: error: {flag}: ")
    assert main(["collect", str(clip), "-o", str(tmp_path / "o"), "--prompt-threshold", "0.3"]) == 2
    assert "--prompt-threshold applies with --prompt" in capsys.readouterr().err
    assert (
        main(["detect", str(clip), "--prompt", "x", "--calibration", str(clip), "-o", str(tmp_path / "d")])
        == 2
    )
    assert "--calibration applies with --precision int8" in capsys.readouterr().err
    assert main(["collect", str(clip), "-o", str(tmp_path / "o"), "--calibration", str(clip)]) == 2
    assert "--calibration applies with --precision int8" in capsys.readouterr().err
    for size in ("0", "1KB"):  # retention would delete every frame the store takes
        assert main(["collect", str(clip), "-o", str(tmp_path / "o"), "--max-size", size]) == 2
        assert f"--max-size {size}: under 1MB" in capsys.readouterr().err
    bad = tmp_path / "unreadable"
    bad.mkdir()
    for name in ("a.jpg", "b.png"):
        (bad / name).write_bytes(b"\xff\xd8\xff\xe0 cut short")
    assert main(["collect", str(bad), "-o", str(tmp_path / "o2"), "--model", "pixel", "--no-progress"]) == 3
    assert "none of its 2 images could be read" in capsys.readouterr().err


def test_collect_a_folder_of_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder (or a glob) is read as images: near-copies are kept once, an unreadable file is
    skipped with a warning, and options that need a video are refused in one line."""
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 255, (6, 8, 3)).repeat(30, 0).repeat(30, 1).astype(np.uint8) for _ in range(3)]
    for i, scene in enumerate(scenes):
        for k in range(3):  # three near-copies of each scene
            noisy = np.clip(scene.astype(int) + rng.integers(-3, 4, scene.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(photos / f"img_{i}{k}.jpg", quality=95)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert (
        main(["collect", str(photos), "-o", str(out), "--model", "pixel", "--budget", "10", "--no-progress"])
        == 0
    )
    kept = [e for e in events(out / "events.jsonl") if e["type"] == "frame_kept"]
    assert len(kept) == 3  # one per scene
    assert "broken.jpg" in capsys.readouterr().err
    glob_out = tmp_path / "glob"
    assert (
        main(
            ["collect", str(photos / "img_0*.jpg"), "-o", str(glob_out), "--model", "pixel", "--no-progress"]
        )
        == 0
    )
    assert len([e for e in events(glob_out / "events.jsonl") if e["type"] == "frame_kept"]) == 1
    assert (
        main(["collect", str(photos), "-o", str(tmp_path / "o"), "--scenes", "transnet", "--no-progress"])
        == 2
    )
    assert "a folder of images has no frame timing" in capsys.readouterr().err


def test_disk_full_store_is_counted_and_capture_goes_on(tmp_path: Path, tiny_disk: Path) -> None:  # noqa: F811
    clip = tmp_path / "long.mp4"
    plan = [(seed, 12, False) for seed in range(1, 41)]  # 40 distinct scenes, 480 frames
    write_station_clip(clip, plan, width=320, height=240)
    ballast = tiny_disk / "ballast"
    ballast.write_bytes(b"\0" * 600_000)
    cfg = parse_config({"sources": [{"type": "file", "path": str(clip), "id": "dock"}],
                        "metrics": {"enabled": False}})  # fmt: skip
    emb = PixelEmbedder()
    collector = Collector(CollectorConfig(shots=False), emb)  # every frame judged: many keeps
    store_sink = FrameStoreSink(FrameStore(tiny_disk / "store", format="png", png_compression=0))
    jsonl = JsonlSink(tmp_path / "events.jsonl")
    p = Pipeline(cfg, embedder=emb, analyzers=[collector], sinks=[store_sink, jsonl])
    p.run()  # completes: a full disk on the store never stops capture or the other sinks
    kept = [e for e in events(tmp_path / "events.jsonl") if e["type"] == "frame_kept"]
    assert sum(collector.counts.values()) == 480  # every frame was analysed
    assert len(kept) >= 30
    assert store_sink.counts["disk_full"] >= 10
    assert store_sink.counts["written"] + store_sink.counts["disk_full"] == len(kept)
    worker = next(w for w in p.sinks.workers if w.name == store_sink.name)
    assert worker.counts["failed"] == store_sink.counts["disk_full"]
    assert_consistent(tiny_disk / "store")


def test_ctrl_c_stops_a_live_collect_cleanly(tmp_path: Path) -> None:
    from tests.rtsp_server import RtspServer, require_gst_rtsp

    require_gst_rtsp()
    out = tmp_path / "out"
    with RtspServer({"cam": "test:160x120@10"}) as srv:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "framesift",
                "collect",
                srv.url("cam"),
                "-o",
                str(out),
                "--model",
                "pixel",
                "--every",
                "1s",
                "--no-progress",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                jl = out / "events.jsonl"
                if jl.exists() and sum('"frame_kept"' in ln for ln in jl.read_text().splitlines()) >= 2:
                    break
                time.sleep(0.1)
            assert proc.poll() is None, proc.communicate()
            os.kill(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 130, err
    assert "interrupted (drained and flushed)" in err and "Traceback" not in err
    evs = events(out / "events.jsonl")  # every line whole
    kept = [e for e in evs if e["type"] == "frame_kept"]
    assert len(kept) >= 2 and {e["reason"] for e in kept} <= {"novel", "periodic"}
    # the last status follows every event of the source (the scene detector's held boundary too)
    assert evs[-1]["type"] == "source_status" and evs[-1]["state"] == "stopped"
    with FrameStore(out / "store", readonly=True) as store:
        assert store.count() == len(kept)
    assert_consistent(out / "store")


def _station() -> dict:  # type: ignore[type-arg]
    import yaml

    from framesift.config import substitute_env

    path = Path(__file__).parents[1] / "configs" / "station-collect.yaml"
    return yaml.safe_load(substitute_env(path.read_text(), where=str(path)))  # type: ignore[no-any-return]


def test_station_config_parts_validate() -> None:
    """configs/station-collect.yaml: the collector, engine and sink sections validate strictly."""
    from framesift.config.engines import EngineConfig
    from framesift.sinks.frame_store import FrameStoreSinkConfig
    from framesift.sinks.jsonl import JsonlSinkConfig

    data = _station()
    (col,) = data["analyzers"]
    cfg = CollectorConfig.model_validate(col)
    assert cfg.max_per_hour == 100 and cfg.every_s == 600 and cfg.seed_from == "station/store"
    EngineConfig.model_validate(data["engine"])
    store = FrameStoreSinkConfig.model_validate(data["sinks"][0])
    assert store.max_size == "50GB" and store.max_age == "90d"
    JsonlSinkConfig.model_validate(data["sinks"][1])


def test_station_config_parses_as_a_pipeline() -> None:
    from framesift.config import PipelineConfig

    if not {"analyzers", "engine"} <= set(PipelineConfig.model_fields):
        pytest.skip("PipelineConfig has no engine/analyzers sections yet (the lead wires the unions)")
    parse_config(_station(), where="configs/station-collect.yaml")


def test_memory_stays_flat_over_a_long_stream(tmp_path: Path) -> None:
    """A looped clip (pts restart every loop) through the whole collect pipeline: no growth."""
    import threading
    import tracemalloc

    from framesift.analyzers.base import Analyzer

    clip = tmp_path / "loop.mp4"
    write_station_clip(clip, [(1, 20, False), (2, 20, True), (3, 20, False)], width=96, height=64)
    samples: dict[int, int] = {}
    done = threading.Event()

    class Probe(Analyzer):
        name = "probe"

        def __init__(self) -> None:
            self.n = 0

        def on_frame(self, frame, embedding):  # type: ignore[no-untyped-def]
            self.n += 1
            if self.n in (600, 1200, 2400):
                samples[self.n] = tracemalloc.get_traced_memory()[0]
            if self.n >= 2400:
                done.set()
            return ()

    cfg = parse_config({"sources": [{"type": "file", "path": str(clip), "id": "loop", "loop": True}],
                        "metrics": {"enabled": False}})  # fmt: skip
    emb = PixelEmbedder()
    collector = Collector(CollectorConfig(bank_size=32, every_s=0.5), emb)  # keeps often: every 0.5 s
    sinks = [FrameStoreSink(FrameStore(tmp_path / "store", fsync=False)), JsonlSink(tmp_path / "ev.jsonl")]
    tracemalloc.start()
    try:
        p = Pipeline(cfg, embedder=emb, analyzers=[collector, Probe()], sinks=sinks)  # type: ignore[list-item]
        p.start()
        try:
            assert done.wait(120), "the looped stream stalled"
        finally:
            p.stop()
    finally:
        tracemalloc.stop()
    assert collector.bank_sizes()["loop"] == 32
    kept = collector.kept("loop")
    assert kept >= 40  # ~2 per second of stream over 40 loops
    growth = samples[2400] - samples[1200]
    assert growth < 512 * 1024, f"traced memory grew {growth} bytes between frames 1200 and 2400"


def test_live_paced_and_fast_runs_keep_the_same_frames(tmp_path: Path) -> None:
    """Budgets and intervals count stream time: the file replayed at its frame rate (as live) and
    processed as fast as possible keep exactly the same frames."""
    clip = tmp_path / "c.mp4"
    write_station_clip(
        clip, [(1, 12, False), (2, 12, False), (3, 12, False), (4, 12, False)], width=96, height=64
    )
    kept = {}
    for realtime in (False, True):
        src = {"type": "file", "path": str(clip), "id": "dock", "realtime": realtime}
        cfg = parse_config({"sources": [src], "metrics": {"enabled": False}})
        emb = PixelEmbedder()
        col = Collector(
            CollectorConfig(novelty_threshold=0.1, max_per_minute=3, burst=3, min_interval_s=0.3), emb
        )
        jl = JsonlSink(tmp_path / f"ev-{realtime}.jsonl")
        Pipeline(cfg, embedder=emb, analyzers=[col], sinks=[jl]).run()
        kept[realtime] = [e["frame_index"] for e in events(tmp_path / f"ev-{realtime}.jsonl")
                          if e["type"] == "frame_kept"]  # fmt: skip
        assert col.counts["skipped:budget"] > 0  # the budget binds
    assert len(kept[False]) == 3 and kept[False] == kept[True]


def test_collect_with_clip_in_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--precision int8 reaches CLIP (OpenVINO with VNNI, else torch), whose engine passes its gate."""
    pytest.importorskip("open_clip")
    from tests.engines.clip_helpers import TINY, register_tiny

    register_tiny()
    clip = tmp_path / "dock.mp4"
    write_station_clip(clip, PLAN)
    out = tmp_path / "out"
    rc = main(["collect", str(clip), "-o", str(out), "--model", TINY, "--precision", "int8", "--budget", "3",
               "--no-progress"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    with FrameStore(out / "store", readonly=True) as store:
        assert store.count() == 3
        assert json.loads(store.get_meta("engine") or "{}")["precision"] == "int8"


def test_pixel_collect_analyses_small_frames_and_keeps_full_size_ones(tmp_path: Path) -> None:
    """With the pixel embedder a video file is analysed on 256-wide frames (as ``framesift scenes``
    does) and the kept frames are the full-size pictures, converted only for candidates."""
    from framesift.cli.inputs import analysis_frames

    clip = tmp_path / "wide.mp4"
    write_station_clip(clip, PLAN, width=640, height=480)
    src = {"type": "file", "path": str(clip)}
    assert analysis_frames(src, "clip") == src  # CLIP reads the frames themselves
    assert analysis_frames(src, "pixel") == {
        **src,
        "width": 256,
        "height": 192,
        "scaler": "fast",
        "full_pictures": True,
    }
    for same in ({**src, "width": 320}, {"type": "rtsp", "url": "rtsp://h/s"}):
        assert analysis_frames(same, "pixel") == same
    for w, h in ((160, 120), (400, 300)):  # narrower than 256, or not two times as wide: as it is
        narrow = tmp_path / f"narrow-{w}.mp4"
        write_station_clip(narrow, PLAN[:1], width=w, height=h)
        assert analysis_frames({"type": "file", "path": str(narrow)}, "pixel") == {
            "type": "file",
            "path": str(narrow),
        }

    out = tmp_path / "out"
    assert (
        main(["collect", str(clip), "-o", str(out), "--model", "pixel", "--budget", "4", "--no-progress"])
        == 0
    )
    kept = [e for e in events(out / "events.jsonl") if e["type"] == "frame_kept"]
    assert len(kept) == 4
    with FrameStore(out / "store", readonly=True) as store:
        records = store.records()
        assert len(records) == 4
        import cv2

        for r in records:
            assert cv2.imread(str(out / "store" / r.path)).shape == (480, 640, 3)
