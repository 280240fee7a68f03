"""Search (text and image, chunked top-k, filters, HTML) and dataset export (coco / yolo / folder)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from framesift.errors import ConfigError
from framesift.store.export import Box, _coco, _yolo, export_dataset, plan_export, split_of
from framesift.store.index import FrameStore
from framesift.store.search import parse_since, search, top_k, write_html
from tests.store.helpers import FakeEmbedder, class_image


def fill(root: Path, emb: FakeEmbedder, classes: list[int], *, t0: float = 1_767_225_600.0) -> list[str]:
    ids = []
    with FrameStore(root, format="png") as store:
        for i, k in enumerate(classes):
            img = class_image(k, (48, 64))
            fid = f"cam{i % 2}-{i:04d}"
            store.add(id=fid, source=f"cam{i % 2}", image=img, wallclock=t0 + 60 * i, frame_index=i,
                      reason="novel", embedding=emb.embed_images([img])[0], model=emb.name)  # fmt: skip
            ids.append(fid)
    return ids


def test_text_and_image_search_rank_the_matching_frames(tmp_path: Path) -> None:
    emb = FakeEmbedder(texts={"a forklift carrying a pallet": 3})
    classes = [0, 1, 3, 2, 3, 5, 3, 4, 1, 3]
    ids = fill(tmp_path, emb, classes)
    hits = search(tmp_path, text="a forklift carrying a pallet", k=4, embedder=emb)
    assert [h.frame.id for h in hits] == sorted((ids[i] for i, k in enumerate(classes) if k == 3),
                                                key=lambda x: -next(h.score for h in hits if h.frame.id == x))  # fmt: skip
    assert {classes[ids.index(h.frame.id)] for h in hits} == {3} and hits[0].score > 0.9
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    # by example image, restricted to one source and a time window
    hits = search(tmp_path, image=class_image(1, (48, 64)), k=3, embedder=emb, source="cam0")
    assert hits[0].frame.id == ids[8] and all(h.frame.source == "cam0" for h in hits)
    hits = search(tmp_path, image=class_image(1, (48, 64)), k=3, embedder=emb, since=1_767_225_600.0 + 60 * 5)
    assert hits[0].frame.id == ids[8] and all(h.frame.frame_index >= 5 for h in hits)
    page = write_html(hits, tmp_path, tmp_path / "out" / "g.html", "q")
    text = page.read_text()
    assert text.count("<img") == 3 and "../cam0/" in text


def test_chunked_top_k_equals_full_sort(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with FrameStore(tmp_path) as store:
        for i, v in enumerate(vecs):
            store.add(
                id=f"f{i:04d}", source="s", image=class_image(0), wallclock=1e9 + i, embedding=v, model="m"
            )
        q = vecs[7] + 0.3 * vecs[8]
        got = top_k(store, q, 10, model="m", chunk=37)
    sims = vecs.astype(np.float16).astype(np.float32) @ (q / np.linalg.norm(q))
    want = [f"f{i:04d}" for i in np.argsort(-sims)[:10]]
    assert [g[0] for g in got] == want


def test_pixel_store_supports_image_search_but_not_text(tmp_path: Path) -> None:
    from framesift.engines.models.pixel import PixelEmbedder

    emb = PixelEmbedder()
    rng = np.random.default_rng(1)
    imgs = [cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_NEAREST)
            for _ in range(6)]  # fmt: skip
    with FrameStore(tmp_path) as store:
        for i, img in enumerate(imgs):
            store.add(id=f"p{i}", source="s", image=img, wallclock=1e9 + i, embedding=emb.embed_images([img])[0],
                      model="pixel")  # fmt: skip
    query = tmp_path / "q.png"
    cv2.imwrite(str(query), cv2.cvtColor(imgs[4], cv2.COLOR_RGB2BGR))
    hits = search(tmp_path, image=query, k=2)  # the embedder is rebuilt from the store's model name
    assert hits[0].frame.id == "p4" and hits[0].score > 0.9
    with pytest.raises(ConfigError, match=r"no text tower.*--image"):
        search(tmp_path, text="a forklift", k=2)


def test_parse_since() -> None:
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("2026-01-01T00:00:00") == 1_767_225_600.0
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday-ish")


def test_split_is_deterministic_and_stable() -> None:
    ids = [f"cam-{i:05d}-abc" for i in range(2000)]
    splits = [split_of(i, 0.2) for i in ids]
    assert splits == [split_of(i, 0.2) for i in ids]
    assert 0.17 < splits.count("val") / len(ids) < 0.23
    assert splits != [split_of(i, 0.2, seed=1) for i in ids]


@pytest.mark.parametrize("fmt", ["coco", "yolo", "folder"])
def test_export_layouts(tmp_path: Path, fmt: str) -> None:
    emb = FakeEmbedder()
    ids = fill(tmp_path / "store", emb, list(range(20)))
    if fmt == "yolo":  # stored frames have no labels: nc: 0 is refused, pointing at `framesift label`
        with pytest.raises(ConfigError, match=r"nc: 0.*framesift label --store"):
            export_dataset(tmp_path / "store", tmp_path / "ds", fmt, val_fraction=0.25, seed=0)
        assert not (tmp_path / "ds").exists()
        with FrameStore(tmp_path / "store", readonly=True) as store:  # the layout, with labels
            items = plan_export(store, val_fraction=0.25, seed=0)
        items[0].boxes.append(Box("forklift", 8, 8, 40, 24))
        counts = _yolo(items, tmp_path / "ds")
        summary = {"frames": len(items), **counts}
    else:
        summary = export_dataset(tmp_path / "store", tmp_path / "ds", fmt, val_fraction=0.25, seed=0)
    assert summary["frames"] == 20 and summary["train"] + summary["val"] == 20 and summary["val"] > 0
    val_ids = {i for i in ids if split_of(i, 0.25, 0) == "val"}
    out = tmp_path / "ds"
    if fmt == "coco":
        coco = json.loads((out / "annotations" / "instances_val.json").read_text())
        assert {im["framesift_id"] for im in coco["images"]} == val_ids
        assert coco["annotations"] == [] and coco["categories"] == []
        for im in coco["images"]:
            assert (out / "images" / im["file_name"]).is_file() and im["width"] == 64 and im["height"] == 48
    elif fmt == "yolo":
        imgs = sorted(out / line for line in (out / "val.txt").read_text().split())
        labels = sorted(p for p in (out / "labels").iterdir() if p.stem in {i.stem for i in imgs})
        assert len(imgs) == len(val_ids) and [p.stem for p in imgs] == [p.stem for p in labels]
        assert all(p.is_file() and p.parent == out / "images" for p in imgs)
        assert all(p.read_text() == "" for p in labels if items[0].file_name != p.stem + ".png")
        assert "nc: 1" in (out / "data.yaml").read_text()
    else:
        files = sorted(p.name for p in (out / "val").rglob("*.png"))
        assert files == sorted(f"{i}.png" for i in val_ids)
        assert {p.name for p in (out / "train").iterdir()} == {"cam0", "cam1"}
    # a second export is identical
    first = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    if fmt == "yolo":
        _yolo(items, out)
    else:
        export_dataset(tmp_path / "store", out, fmt, val_fraction=0.25, seed=0)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == first


def test_export_writers_carry_boxes_when_labels_exist(tmp_path: Path) -> None:
    emb = FakeEmbedder()
    fill(tmp_path / "store", emb, [0, 1])
    with FrameStore(tmp_path / "store", readonly=True) as store:
        items = plan_export(store, val_fraction=0.0)
    items[0].boxes.append(Box("forklift", 8, 8, 40, 24))
    _coco(items, tmp_path / "coco")
    coco = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert coco["categories"] == [{"id": 1, "name": "forklift", "supercategory": ""}]
    assert coco["annotations"][0]["bbox"] == [8, 8, 32, 16]
    _yolo(items, tmp_path / "yolo")
    line = (tmp_path / "yolo" / "labels" / (Path(items[0].file_name).stem + ".txt")).read_text()
    assert line == "0 0.375000 0.333333 0.500000 0.333333\n"


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown export format"):
        export_dataset(tmp_path, tmp_path / "o", "voc")
    with pytest.raises(ConfigError, match="not a frame store"):
        export_dataset(tmp_path / "none", tmp_path / "o", "coco")


def test_text_search_through_the_real_clip_code_path(tmp_path: Path) -> None:
    """framesift's ClipEmbedder (tiny random-weight open_clip): text search ranks by text-image cosine."""
    pytest.importorskip("open_clip")
    from framesift.engines.models.clip import ClipEmbedder
    from tests.engines.clip_helpers import TINY, tiny_model
    from tests.store.helpers import decode, write_station_clip

    emb = ClipEmbedder(
        TINY, torch_model=tiny_model(0), runtime="torch", device="cpu", cache_dir=str(tmp_path)
    )
    clip = tmp_path / "c.mp4"
    write_station_clip(clip, [(s, 2, False) for s in range(1, 7)], width=96, height=96)
    frames = list(decode(clip, "dock"))
    vecs = emb.embed_images(frames)
    with FrameStore(tmp_path / "store") as store:
        for f, v in zip(frames, vecs, strict=True):
            store.add(id=f"f{f.index:03d}", source="dock", image=f.image, wallclock=1e9 + f.index,
                      frame_index=f.index, embedding=v, model=emb.model_id)  # fmt: skip
    query = "a forklift carrying a pallet"
    hits = search(tmp_path / "store", text=query, k=5, embedder=emb)
    want = np.argsort(-(vecs.astype(np.float16).astype(np.float32) @ emb.embed_texts([query])[0]))[:5]
    assert [h.frame.frame_index for h in hits] == [int(i) for i in want]
    # without the embedder: the store's model id names random weights, which nothing can rebuild
    with pytest.raises(ConfigError, match="random CLIP weights"):
        search(tmp_path / "store", text=query, k=5)


def test_export_cli_writes_a_coco_dataset(tmp_path: Path) -> None:
    import subprocess
    import sys

    fill(tmp_path / "store", FakeEmbedder(), [0, 1, 2, 0, 1, 2, 0, 1])
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "framesift", "export", "--store", str(tmp_path), "--format", "coco"]
    proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ann = out / "annotations"
    images = [
        im
        for split in ("train", "val")
        for im in json.loads((ann / f"instances_{split}.json").read_text())["images"]
    ]
    assert len(images) == 8
    # -o and --output, as the other commands take them, name the same folder
    for flag in ("-o", "--output"):
        again = subprocess.run(
            [*cmd, flag, str(tmp_path / flag)], capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        assert (tmp_path / flag / "annotations" / "instances_train.json").read_text() == (
            ann / "instances_train.json"
        ).read_text()
    missing = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--out" in missing.stderr and "Traceback" not in missing.stderr
