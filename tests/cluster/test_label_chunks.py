"""``label --ray``'s parts without a cluster: chunks of consecutive frames, the store and images
sources restricted to a chunk (``offset``/``limit``), and partial datasets merged into one equal to a
dataset written in one go."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from framesift.cluster.label import plan
from framesift.labels import LabeledImage, LabelWriter, export_labels
from framesift.store.index import FrameStore
from framesift.store.source import StoreSource, StoreSourceConfig
from framesift.stream.sources.images import ImagesSource, ImagesSourceConfig
from tests.store.test_datasets import labelled


def test_plan_cuts_consecutive_chunks() -> None:
    shards = plan("/s", 11, 4)
    assert [(s.own_start, s.own_end) for s in shards] == [(0, 4), (4, 8), (8, 11)]
    assert {s.count for s in shards} == {3} and [s.index for s in shards] == [0, 1, 2]
    assert plan("/s", 0, 4) == []


def names(source: Any) -> list[tuple[int, str]]:
    source.open()
    try:
        return [(f.index, f.meta["name"]) for f in source.frames()]
    finally:
        source.close()


def test_store_and_images_sources_read_a_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with FrameStore(tmp_path / "store", fsync=False) as fs:
        for i in range(5):
            fs.add(
                id=f"k{i}", source="cam", image=rng.integers(0, 255, (32, 48, 3), np.uint8), wallclock=1.0 + i
            )
    cfg = StoreSourceConfig(path=str(tmp_path / "store"), offset=1, limit=3)
    assert cfg.frame_count() == 3
    assert [n for _, n in names(StoreSource(cfg, "store"))] == ["k1", "k2", "k3"]
    tail = StoreSourceConfig(path=str(tmp_path / "store"), offset=4, limit=3)
    assert tail.frame_count() == 1 and [n for _, n in names(StoreSource(tail, "store"))] == ["k4"]

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    icfg = ImagesSourceConfig(path=str(folder), offset=3)
    assert icfg.frame_count() == 2
    assert names(ImagesSource(icfg, "images")) == [(3, "f3"), (4, "f4")]  # indices as in a whole run
    for bad in ({"offset": -1}, {"limit": 0}):
        with pytest.raises(ValidationError):
            ImagesSourceConfig(path=str(folder), **bad)
        with pytest.raises(ValidationError):
            StoreSourceConfig(path=str(folder), **bad)


def files(folder: Path) -> dict[str, Any]:
    return {
        str(p.relative_to(folder)): json.loads(p.read_bytes()) if p.suffix == ".json" else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_parts_merge_into_the_dataset_written_in_one_go(tmp_path: Path, fmt: str) -> None:
    items: list[LabeledImage] = labelled(10)
    classes = ["a", "b", "c"]
    export_labels(items, classes, tmp_path / "whole", fmt=fmt)  # type: ignore[arg-type]
    parts = []
    for k, chunk in enumerate((items[:4], items[4:8], items[8:])):
        parts.append(tmp_path / f"part{k}")
        export_labels(chunk, classes, parts[-1], fmt=fmt)  # type: ignore[arg-type]
    for _ in range(2):  # merging again over the first merge writes the same dataset
        writer = LabelWriter(tmp_path / "merged", classes, fmt=fmt)  # type: ignore[arg-type]
        for part in parts:
            writer.add_part(part)
        assert writer.close()["images"] == 10
        assert files(tmp_path / "merged") == files(tmp_path / "whole")
    writer = LabelWriter(tmp_path / "twice", classes, fmt=fmt)  # type: ignore[arg-type]
    writer.add_part(parts[0])
    with pytest.raises(Exception, match="two parts"):
        writer.add_part(parts[0])
