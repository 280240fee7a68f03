"""``framesift detect`` over several files, locally and with ``--ray`` on a real two-node cluster
(random-weight YOLO-World exported to ONNX): each file is a shard, and its tracks equal the local run's."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from framesift.cli import main
from framesift.engines.cache import EngineCache
from tests.detect.conftest import IMGSZ, engine_cache, world_model  # noqa: F401 - fixtures

pytest.importorskip("ray")
pytest.importorskip("ultralytics")
pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def onnx_model(world_model, engine_cache: EngineCache) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    from framesift.engines.models.yolo_world import YoloWorld

    return str(
        YoloWorld(world_model, imgsz=IMGSZ, cache=engine_cache, device="cpu", runtime="onnxruntime").onnx_path
    )


def tracks(folder: Path) -> list[dict[str, object]]:
    rows = [json.loads(line) for line in (folder / "detections.jsonl").read_text().splitlines()]
    for r in rows:  # crops lie in each run's own folder
        if r.get("crop"):
            r["crop"] = str(Path(str(r["crop"])).relative_to(folder))
    return [{k: v for k, v in r.items() if k != "wallclock"} for r in rows]


def test_detect_several_files_on_ray_equals_local(  # type: ignore[no-untyped-def]
    make_clip, onnx_model: str, ray_head, ray_worker, tmp_path: Path, capsys
) -> None:
    clips = [
        make_clip(f"cam{k}.mp4", segments=(12,), width=160, height=120, fps=Fraction(25), seed=k)
        for k in range(3)
    ]
    args = [
        "detect", *[str(c.path) for c in clips], "--prompt", "person", "--prompt", "forklift", "--model", onnx_model,
        "--imgsz", str(IMGSZ), "--conf", "0.05", "--clip-pretrained", "none", "--device", "cpu", "--batch", "4",
        "--no-video", "--no-progress",
    ]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "local")]) == 0
    assert main([*args, "-o", str(tmp_path / "ray"), "--ray", ray_head.address]) == 0
    err = capsys.readouterr().err
    assert "ray: 3 shards on" in err, err
    for k in range(3):
        local = tracks(tmp_path / "local" / f"cam{k}")
        assert local, "no tracks: the test would prove nothing"
        assert tracks(tmp_path / "ray" / f"cam{k}") == local
