"""``framesift label --ray`` on a real two-node Ray cluster (127.0.0.1, random-weight YOLO-World
exported to ONNX): a frame store cut into chunks, labelled by workers and merged into one dataset
equal to a local run's; the worker node killed mid-run, its chunk run again, nothing duplicated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framesift.cli import main
from framesift.engines.cache import EngineCache
from tests.detect.conftest import IMGSZ, engine_cache, world_model  # noqa: F401 - fixtures

pytest.importorskip("ray")
pytest.importorskip("ultralytics")
pytest.importorskip("open_clip")

FRAMES = 14


@pytest.fixture(scope="module")
def onnx_model(world_model, engine_cache: EngineCache) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    from framesift.engines.models.yolo_world import YoloWorld

    return str(
        YoloWorld(world_model, imgsz=IMGSZ, cache=engine_cache, device="cpu", runtime="onnxruntime").onnx_path
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frame store of FRAMES noise frames from two sources (the label run reads them oldest first)."""
    from framesift.store.index import FrameStore

    folder = tmp_path_factory.mktemp("store") / "store"
    rng = np.random.default_rng(0)
    with FrameStore(folder, fsync=False) as fs:
        for i in range(FRAMES):
            fs.add(
                id=f"cam{i % 2}-{i:08d}",
                source=f"cam{i % 2}",
                image=rng.integers(0, 255, (96, 128, 3), dtype=np.uint8),
                wallclock=1.0 + i,
            )
    return folder


def label_args(store: Path, onnx_model: str, fmt: str = "coco") -> list[str]:
    return [
        "label", "--store", str(store), "--prompt", "person", "--prompt", "forklift", "--model", onnx_model,
        "--imgsz", str(IMGSZ), "--conf", "0.05", "--clip-pretrained", "none", "--device", "cpu",
        "--batch", "4", "--format", fmt, "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def local_coco(store: Path, onnx_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "coco"
    assert main([*label_args(store, onnx_model), "-o", str(out)]) == 0
    return out


def dataset(folder: Path) -> dict[str, Any]:
    """Every file of a dataset: JSON files parsed, others as bytes."""
    out: dict[str, Any] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            rel = str(p.relative_to(folder))
            out[rel] = json.loads(p.read_bytes()) if p.suffix == ".json" else p.read_bytes()
    return out


def check_equal(on_ray: Path, local: Path) -> None:
    got, want = dataset(on_ray), dataset(local)
    assert sorted(got) == sorted(want)  # the same files, and no manifest left behind
    doc = want["annotations.json"]
    assert len(doc["images"]) == FRAMES and doc["annotations"], "no labels: the test would prove nothing"
    assert got == want
    ids = [a["id"] for a in got["annotations.json"]["annotations"]]
    assert len(set(ids)) == len(ids)


def test_label_store_on_ray_in_chunks_equals_local(  # type: ignore[no-untyped-def]
    store: Path, onnx_model: str, local_coco: Path, ray_head, ray_worker, tmp_path: Path, capsys
) -> None:
    on_ray = tmp_path / "ray"
    args = [*label_args(store, onnx_model), "-o", str(on_ray), "--ray", ray_head.address, "--chunk", "5"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "ray: 3 shards on" in err, err
    check_equal(on_ray, local_coco)
    # a folder of images as YOLO: the same files as a local run's
    import cv2

    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(7):
        cv2.imwrite(str(images / f"f{i}.png"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    local_yolo, ray_yolo = tmp_path / "local-yolo", tmp_path / "ray-yolo"
    assert main([*label_args(images, onnx_model, "yolo"), "-o", str(local_yolo)]) == 0
    args = [*label_args(images, onnx_model, "yolo"), "-o", str(ray_yolo), "--ray", ray_head.address]
    assert main([*args, "--chunk", "3"]) == 0
    assert "ray: 3 shards on" in capsys.readouterr().err
    assert dataset(ray_yolo) == dataset(local_yolo)
    assert len(list((ray_yolo / "labels").iterdir())) == 7


def test_killed_worker_node_chunk_runs_again_and_dataset_equals_local(  # type: ignore[no-untyped-def]
    store: Path, onnx_model: str, local_coco: Path, ray_head, ray_worker, tmp_path: Path, capsys
) -> None:
    on_ray = tmp_path / "ray"
    manifest = on_ray / ".framesift-ray" / "label"

    def running() -> int:
        """Chunks under way: part folders (made when a chunk's pipeline opens) not yet saved."""
        parts = manifest / "parts"
        dirs = list(parts.iterdir()) if parts.is_dir() else []
        return sum(not (manifest / f"{d.name}.pkl").exists() for d in dirs)

    # one actor per node: two chunks under way, one is the worker's
    with ray_worker.killed_when(lambda: manifest.is_dir() and any(manifest.glob("*.pkl")) and running() >= 2):
        code = main(
            [*label_args(store, onnx_model), "-o", str(on_ray), "--ray", ray_head.address, "--chunk", "3"]
        )
    err = capsys.readouterr().err
    assert code == 0, err
    assert ray_worker.proc.poll() is not None  # the node is gone
    assert "re-run after a worker died" in err, err
    check_equal(on_ray, local_coco)


def test_interrupted_run_resumes_from_its_saved_chunks(  # type: ignore[no-untyped-def]
    store: Path, onnx_model: str, local_coco: Path, ray_head, tmp_path: Path, capsys
) -> None:
    from framesift.cli import build_parser
    from framesift.cli.label import label_config
    from framesift.cluster import label as cl

    on_ray = tmp_path / "ray"
    args = [*label_args(store, onnx_model), "-o", str(on_ray), "--ray", ray_head.address, "--chunk", "5"]
    config, _ = label_config(build_parser().parse_args(args))
    shards, manifest, job = cl.prepare(config, FRAMES, 5)
    # what an interrupted run left: its first chunk saved, the second one's part half written
    manifest.save(shards[0], cl.run_chunk(shards[0], job, {}))
    Path(job.parts[1], "images").mkdir(parents=True)
    manifest.save(shards[1], cl.ChunkResult(1, 5, 0))
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "ray: 2 shards on 1 node(s), 1 resumed from the manifest" in err, err
    check_equal(on_ray, local_coco)


def test_bad_ray_options_are_one_line(store: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base = ["label", "--store", str(store), "--prompt", "x", "-o", str(tmp_path / "o")]
    for extra, match in (
        (["--ray", "local", "--chunk", "0"], "--chunk 0"),
        (["--chunk", "5"], "apply with --ray"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
