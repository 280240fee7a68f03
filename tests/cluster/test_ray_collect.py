"""``framesift collect --ray --budget N`` on a real two-node Ray cluster: the total budget is exact
across shards, frame ids are idempotent (a second run adds nothing), and shot coverage is within
0.02 of the local run's; the same job run again adds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from framesift.cli import main
from framesift.samples_scenes import SceneClipInfo
from framesift.store.index import FrameStore

pytest.importorskip("ray")


def kept(out: Path) -> dict[str, list[int]]:
    with FrameStore(out / "store") as store:
        frames: dict[str, list[int]] = {}
        for r in store.records():
            frames.setdefault(r.source, []).append(r.frame_index)
        return {k: sorted(v) for k, v in frames.items()}


def coverage(clip: SceneClipInfo, frames: list[int]) -> float:
    """Shots (between the clip's true transitions) holding a kept frame ÷ shots."""
    starts = [0] + [t.end + 1 if t.kind != "cut" else t.start for t in clip.transitions]
    ends = [t.start for t in clip.transitions] + [clip.frames]
    shots = list(zip(starts, ends, strict=True))
    return sum(any(s <= f < e for f in frames) for s, e in shots) / len(shots)


def test_total_budget_exact_across_shards_and_ids_idempotent(  # type: ignore[no-untyped-def]
    archive, ray_head, ray_worker, tmp_path: Path, capsys
) -> None:
    budget = 12
    args = ["collect", *archive.paths, "--model", "pixel", "--budget", str(budget), "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "local")]) == 0
    ray_args = [*args, "-o", str(tmp_path / "ray"), "--ray", ray_head.address, "--shard-seconds", "4"]
    assert main(ray_args) == 0
    err = capsys.readouterr().err
    on_ray, local = kept(tmp_path / "ray"), kept(tmp_path / "local")
    assert "shards on 2 node(s)" in err, err  # the long file was cut, and both nodes ran shards
    assert {k: len(v) for k, v in on_ray.items()} == {"long": budget, "short": 5}  # short: 5 shots, 5 kept
    assert {k: len(v) for k, v in local.items()} == {k: len(v) for k, v in on_ray.items()}
    assert len(set(on_ray["long"])) == budget
    assert abs(coverage(archive.long, on_ray["long"]) - coverage(archive.long, local["long"])) <= 0.02
    # the same job again: both files were merged into the store, nothing is collected twice
    assert main(ray_args) == 0
    assert "kept 0; 2 files already collected by an earlier run" in capsys.readouterr().err
    assert kept(tmp_path / "ray") == on_ray
