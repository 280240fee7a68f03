"""``framesift scenes --ray`` on a real two-node Ray cluster (127.0.0.1): the worker node killed
mid-run, its shard run again elsewhere, and every file's outputs equal the local run's; an
interrupted run resumes from its manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from framesift.cli import main

pytest.importorskip("ray")


def outputs(folder: Path) -> dict[str, bytes]:
    """The files a run wrote that do not carry timings: scene list CSVs and EDLs."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".csv", ".edl")}


def scenes(args: list[str]) -> int:
    return main(["scenes", "--no-html", "--no-thumbnails", "--no-progress", *args])


def test_killed_worker_node_shard_runs_again_and_results_equal_local(  # type: ignore[no-untyped-def]
    archive, ray_head, ray_worker, tmp_path: Path, capsys
) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert scenes([*archive.paths, "-o", str(local)]) == 0
    capsys.readouterr()
    manifest = on_ray / ".framesift-ray" / "scenes"
    # once shards are finishing, both nodes are mid-shard
    with ray_worker.killed_when(lambda: manifest.is_dir() and any(manifest.glob("*.pkl")), poll=0.02):
        code = scenes([*archive.paths, "-o", str(on_ray), "--ray", ray_head.address, "--shard-seconds", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert ray_worker.proc.poll() is not None  # the node is gone
    assert "re-run after a worker died" in err, err
    assert outputs(on_ray) == outputs(local) and len(outputs(local)) == 4
    assert not manifest.exists()  # a finished run leaves no manifest behind


def test_interrupted_run_resumes_from_manifest(archive, ray_head, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from framesift.analyzers.scene_change import SceneChangeConfig
    from framesift.cluster import scenes as cs
    from framesift.cluster.ray_exec import Manifest

    cfg, engine = SceneChangeConfig(), {"model": "pixel"}
    opts = {"split": False, "no_html": True, "no_thumbnails": True}
    shards, _ = cs.plan(archive.paths, cfg, 2.0)
    # what an interrupted run left: the manifest and the results of its first shards
    manifest = Manifest(tmp_path / "ray" / ".framesift-ray" / "scenes", shards, cs.json_salt(cfg, engine))
    done = shards[: len(shards) // 2]
    for s in done:
        manifest.save(s, cs.run_shard(s, cfg, engine))
    lines, stats = cs.run_on_ray(
        archive.paths, str(tmp_path / "ray"), cfg, engine, opts, address=ray_head.address, shard_seconds=2.0
    )
    assert (stats.resumed, stats.ran) == (len(done), len(shards) - len(done))
    assert [line.split(":")[0] for line in lines] == archive.paths
    assert scenes([*archive.paths, "-o", str(tmp_path / "local")]) == 0
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")


def test_an_unreadable_file_is_one_line_and_the_others_still_run(  # type: ignore[no-untyped-def]
    archive, ray_head, tmp_path: Path, capsys
) -> None:
    bad, audio = tmp_path / "garbage.mp4", tmp_path / "audio.m4a"
    bad.write_bytes(b"\x00not a video" * 100)
    import av

    with av.open(str(audio), "w") as out:  # a file with no video stream
        s = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        frame.planes[0].update(bytes(4096))
        frame.rate = 8000
        for packet in s.encode(frame):  # type: ignore[attr-defined]
            out.mux(packet)
        out.mux(s.encode(None))  # type: ignore[attr-defined]
    code = scenes(
        [
            str(bad),
            str(audio),
            str(archive.short.path),
            "-o",
            str(tmp_path / "out"),
            "--ray",
            ray_head.address,
        ]
    )
    err = capsys.readouterr().err
    assert code == 3, err
    assert "garbage.mp4: not a video file FFmpeg can read" in err and "Traceback" not in err, err
    assert "audio.m4a: has no video stream" in err, err
    assert "2 of 3 files could not be read" in err, err
    assert (tmp_path / "out" / "short-Scenes.csv").is_file()
