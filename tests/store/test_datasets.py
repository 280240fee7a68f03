"""The datasets both commands write are accepted by their readers: Ultralytics (YOLO) from any working
directory and after a move, pycocotools (COCO, masks included). One layout, one writer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from framesift.errors import ConfigError
from framesift.labels import LabeledImage, export_labels
from framesift.store import FrameStore, resolve_store_dir
from framesift.store.export import Box, _coco, _yolo, export_dataset, plan_export, split_of
from tests.store.helpers import FakeEmbedder, class_image

CLASSES = ["person", "forklift", "pallet"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools.*")


def labelled(n: int = 12, masks: bool = True) -> list[LabeledImage]:
    import supervision as sv

    items = []
    h, w = 96, 128
    for k in range(n):
        m = np.zeros((2, h, w), bool)
        m[0, 10 + k : 50, 12:60] = True
        m[1, 40:90, 70:120] = True
        m[1, 55:70, 85:100] = False  # a hole: RLE even in polygon mode
        xyxy = sv.mask_to_xyxy(m).astype(np.float32)
        det = sv.Detections(
            xyxy=xyxy, mask=m if masks else None, confidence=np.array([0.9, 0.6], np.float32),
            class_id=np.array([k % 3, (k + 1) % 3]),
        )  # fmt: skip
        items.append(LabeledImage(f"cam-{k:04d}-x", np.full((h, w, 3), 10 * k, np.uint8), det))
    return items


@pytest.fixture
def ultralytics(monkeypatch: pytest.MonkeyPatch) -> Any:
    utils = pytest.importorskip("ultralytics.data.utils")
    # check_det_dataset ends by fetching a plotting font (Arial.ttf) over the network: not the dataset
    monkeypatch.setattr(utils, "check_font", lambda *a, **k: None)
    return utils


def accept_yolo(utils: Any, yaml_path: str | Path, task: str = "detect") -> dict[str, Any]:
    """check_det_dataset, then Ultralytics' own label parser on both splits: no file rejected."""
    from ultralytics.data.dataset import YOLODataset

    data = utils.check_det_dataset(str(yaml_path))
    for split in ("train", "val"):
        images = Path(data[split]).read_text().split()
        ds = YOLODataset(img_path=data[split], data=data, task=task, augment=False, imgsz=128)
        assert len(ds.labels) == len(images) > 0  # corrupt image/label pairs would be dropped
        assert all((lb["bboxes"] >= 0).all() and (lb["bboxes"] <= 1).all() for lb in ds.labels)
    return data


@pytest.mark.parametrize("masks", [False, True])
def test_label_yolo_dataset_passes_ultralytics_from_any_directory(
    tmp_path: Path, ultralytics: Any, monkeypatch: pytest.MonkeyPatch, masks: bool
) -> None:
    out = tmp_path / "made" / "ds"
    counts = export_labels(labelled(masks=masks), CLASSES, out, fmt="yolo")
    assert counts == {"images": 12, "annotations": 24}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the dataset's folder, nor its parent
    data = accept_yolo(ultralytics, out / "data.yaml", "segment" if masks else "detect")
    assert data["train"] == str((out / "train.txt").resolve()) and data["names"] == dict(enumerate(CLASSES))
    monkeypatch.chdir(tmp_path)  # a relative YAML path
    accept_yolo(ultralytics, "made/ds/data.yaml")
    moved = tmp_path / "moved"
    shutil.move(out, moved)  # copied to a training machine
    monkeypatch.chdir(elsewhere)
    assert accept_yolo(ultralytics, moved / "data.yaml")["val"] == str((moved / "val.txt").resolve())


def test_store_yolo_writer_passes_ultralytics_with_boxes_clipped(
    tmp_path: Path, ultralytics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(tmp_path / "store", 10)
    with FrameStore(tmp_path / "store", readonly=True) as store:
        items = plan_export(store, val_fraction=0.3)
    for i, it in enumerate(items):
        it.boxes.append(Box(["forklift", "pallet"][i % 2], 8, 4, 40, 30))
    items[0].boxes.append(Box("forklift", -5, 10, 80, 60))  # a detector's box past the 64x48 image
    _yolo(items, tmp_path / "ds")
    monkeypatch.chdir(tmp_path / "store")
    data = accept_yolo(ultralytics, tmp_path / "ds" / "data.yaml")
    assert data["names"] == {0: "forklift", 1: "pallet"}


def fill(root: Path, n: int) -> list[str]:
    emb = FakeEmbedder()
    ids = []
    with FrameStore(root, format="png") as store:
        for i in range(n):
            img = class_image(i, (48, 64))
            store.add(id=f"cam-{i:04d}", source="cam", image=img, wallclock=1e9 + i, embedding=emb.embed_images([img])[0],
                      model=emb.name)  # fmt: skip
            ids.append(f"cam-{i:04d}")
    return ids


def test_yolo_export_of_an_unlabelled_store_is_refused_in_one_line(tmp_path: Path) -> None:
    fill(tmp_path / "out" / "store", 3)
    cmd = [sys.executable, "-m", "framesift", "export", "--store", str(tmp_path / "out"), "--format", "yolo"]
    proc = subprocess.run([*cmd, "--out", str(tmp_path / "ds")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "nc: 0" in proc.stderr and f"framesift label --store {tmp_path / 'out'} --prompt" in proc.stderr
    assert not (tmp_path / "ds").exists()


def load_coco(path: Path) -> Any:
    coco_mod = pytest.importorskip("pycocotools.coco")
    return coco_mod.COCO(str(path))


def test_store_coco_export_loads_with_pycocotools(tmp_path: Path) -> None:
    ids = fill(tmp_path / "store", 10)
    summary = export_dataset(tmp_path / "store", tmp_path / "ds", "coco", val_fraction=0.3)
    seen = []
    for split in ("train", "val"):
        coco = load_coco(tmp_path / "ds" / "annotations" / f"instances_{split}.json")
        imgs = coco.loadImgs(coco.getImgIds())
        assert len(imgs) == summary[split] and coco.loadAnns(coco.getAnnIds()) == []
        assert all((tmp_path / "ds" / "images" / im["file_name"]).is_file() for im in imgs)
        seen += [im["framesift_id"] for im in imgs]
    assert sorted(seen) == ids
    with FrameStore(tmp_path / "store", readonly=True) as store:  # with boxes (the writers' other input)
        items = plan_export(store, val_fraction=0.0)
    items[1].boxes.append(Box("forklift", 8, 8, 40, 24, score=0.5))
    _coco(items, tmp_path / "boxes")
    coco = load_coco(tmp_path / "boxes" / "annotations" / "instances_train.json")
    (ann,) = coco.loadAnns(coco.getAnnIds(catIds=coco.getCatIds(catNms=["forklift"])))
    assert (
        ann["bbox"] == [8, 8, 32, 16]
        and coco.loadImgs(ann["image_id"])[0]["framesift_id"] == items[1].frame.id
    )


@pytest.mark.parametrize("mask_format", ["rle", "polygon"])
def test_label_coco_dataset_loads_with_pycocotools_masks_included(tmp_path: Path, mask_format: str) -> None:
    items = labelled()
    export_labels(items, CLASSES, tmp_path, fmt="coco", mask_format=mask_format)  # type: ignore[arg-type]
    by_name = {it.name: it for it in items}
    total = 0
    for split in ("train", "val"):
        coco = load_coco(tmp_path / "annotations" / f"instances_{split}.json")
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES
        for img in coco.loadImgs(coco.getImgIds()):
            it = by_name[Path(img["file_name"]).stem]
            assert split_of(it.name, 0.2) == split
            assert (tmp_path / "images" / img["file_name"]).is_file()
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
            assert [a["category_id"] - 1 for a in anns] == list(it.detections.class_id)
            for a, want in zip(anns, it.detections.mask, strict=True):
                got = coco.annToMask(a).astype(bool)
                iou = (got & want).sum() / (got | want).sum()
                assert iou > (0.99 if a["iscrowd"] else 0.85), (mask_format, iou)
            total += len(anns)
    assert total == 24
    coco = load_coco(tmp_path / "annotations.json")  # every image, the same ids
    assert len(coco.getImgIds()) == 12 and len(coco.loadAnns(coco.getAnnIds())) == 24


def test_label_and_store_export_put_a_frame_in_the_same_split(tmp_path: Path) -> None:
    ids = fill(tmp_path / "store", 30)
    export_dataset(tmp_path / "store", tmp_path / "ds", "coco")
    import supervision as sv

    with FrameStore(tmp_path / "store", readonly=True) as store:
        items = [LabeledImage(r.id, class_image(0), sv.Detections.empty()) for r in store.records()]
    export_labels(items, CLASSES, tmp_path / "labels", fmt="coco")
    for split in ("train", "val"):
        a = json.loads((tmp_path / "ds" / "annotations" / f"instances_{split}.json").read_text())
        b = json.loads((tmp_path / "labels" / "annotations" / f"instances_{split}.json").read_text())
        assert sorted(im["framesift_id"] for im in a["images"]) == sorted(
            Path(im["file_name"]).stem for im in b["images"]
        )
    assert len(ids) == 30


def test_resolve_store_dir(tmp_path: Path) -> None:
    fill(tmp_path / "out" / "store", 1)
    assert resolve_store_dir(tmp_path / "out") == tmp_path / "out" / "store"
    assert resolve_store_dir(tmp_path / "out" / "store") == tmp_path / "out" / "store"
    with pytest.raises(ConfigError, match=r"not a frame store.*framesift collect") as exc:
        resolve_store_dir(tmp_path)
    assert "\n" not in str(exc.value)
