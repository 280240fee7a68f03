"""Auto-label export: COCO (RLE / polygons) and YOLO load back with supervision's loaders, consistent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from framesift.errors import ConfigError
from framesift.labels import LabeledImage, export_labels

CLASSES = ["person", "forklift", "pallet"]


def _items() -> list[LabeledImage]:
    items = []
    for n in range(3):
        h, w = 120, 160
        img = np.full((h, w, 3), 30 * n, np.uint8)
        masks = np.zeros((2, h, w), bool)
        masks[0, 10 + n : 60, 20:70] = True  # a rectangle
        masks[1, 50:110, 90:150] = True
        masks[1, 70:90, 110:130] = False  # a ring: has a hole
        xyxy = np.array([sv.mask_to_xyxy(masks)[i] for i in range(2)], np.float32)
        det = sv.Detections(
            xyxy=xyxy,
            mask=masks,
            confidence=np.array([0.9, 0.7], np.float32),
            class_id=np.array([n % 3, (n + 1) % 3]),
            data={"class_name": np.array([CLASSES[n % 3], CLASSES[(n + 1) % 3]])},
        )
        items.append(LabeledImage(f"cam-{n:03d}", img, det))
    items.append(LabeledImage("empty", np.zeros((120, 160, 3), np.uint8), sv.Detections.empty()))
    return items


def _check_coco(doc: dict) -> None:  # pycocotools-style consistency
    img_ids = [i["id"] for i in doc["images"]]
    ann_ids = [a["id"] for a in doc["annotations"]]
    cat_ids = {c["id"] for c in doc["categories"]}
    assert len(set(img_ids)) == len(img_ids) and len(set(ann_ids)) == len(ann_ids)
    assert min(ann_ids) >= 1 and min(img_ids) >= 1
    assert [c["name"] for c in sorted(doc["categories"], key=lambda c: c["id"])] == CLASSES
    sizes = {i["id"]: (i["width"], i["height"]) for i in doc["images"]}
    for a in doc["annotations"]:
        assert a["image_id"] in sizes and a["category_id"] in cat_ids
        x, y, bw, bh = a["bbox"]
        w, h = sizes[a["image_id"]]
        assert x >= 0 and y >= 0 and x + bw <= w and y + bh <= h
        assert 0 < a["area"] <= (bw + 1) * (bh + 1)  # mask_to_xyxy boxes are pixel-inclusive


@pytest.mark.parametrize("mask_format", ["rle", "polygon"])
def test_coco_roundtrip(tmp_path: Path, mask_format: str) -> None:
    items = _items()
    counts = export_labels(items, CLASSES, tmp_path, fmt="coco", mask_format=mask_format)  # type: ignore[arg-type]
    assert counts == {"images": 4, "annotations": 6}
    doc = json.loads((tmp_path / "annotations.json").read_text())
    _check_coco(doc)
    # polygons cannot hold the ring's hole: it stays RLE in polygon mode
    assert {a["iscrowd"] for a in doc["annotations"]} == ({1} if mask_format == "rle" else {0, 1})
    ds = sv.DetectionDataset.from_coco(
        str(tmp_path / "images"), str(tmp_path / "annotations.json"), force_masks=True
    )
    assert ds.classes == CLASSES and len(ds) == 4
    by_name = {Path(p).stem: det for p, _, det in ds}
    assert len(by_name["empty"]) == 0
    for it in items[:3]:
        got = by_name[it.name]
        np.testing.assert_array_equal(got.class_id, it.detections.class_id)
        np.testing.assert_allclose(got.xyxy, it.detections.xyxy, atol=1.01)
        for i in range(2):
            inter = np.logical_and(got.mask[i], it.detections.mask[i]).sum()
            union = np.logical_or(got.mask[i], it.detections.mask[i]).sum()
            assert inter / union > (0.999 if mask_format == "rle" or i == 1 else 0.9)
    if mask_format == "rle":  # exact masks: area equals the mask's pixel count
        areas = sorted(a["area"] for a in doc["annotations"])
        assert areas == sorted(float(m.sum()) for it in items[:3] for m in it.detections.mask)


def test_yolo_roundtrip_boxes_and_segments(tmp_path: Path) -> None:
    items = _items()
    counts = export_labels(items, CLASSES, tmp_path / "seg", fmt="yolo")
    assert counts == {"images": 4, "annotations": 6}
    ds = sv.DetectionDataset.from_yolo(
        str(tmp_path / "seg" / "images"),
        str(tmp_path / "seg" / "labels"),
        str(tmp_path / "seg" / "data.yaml"),
        force_masks=True,
    )
    assert ds.classes == CLASSES and len(ds) == 4
    by_name = {Path(p).stem: det for p, _, det in ds}
    for it in items[:3]:
        got = by_name[it.name]
        np.testing.assert_array_equal(got.class_id, it.detections.class_id)
        np.testing.assert_allclose(got.xyxy, it.detections.xyxy, atol=2.0)
        assert got.mask is not None
    boxes_only = [
        LabeledImage(i.name, i.image, sv.Detections(xyxy=i.detections.xyxy, class_id=i.detections.class_id))
        if len(i.detections)
        else i
        for i in items
    ]
    export_labels(boxes_only, CLASSES, tmp_path / "box", fmt="yolo")
    line = (tmp_path / "box" / "labels" / "cam-000.txt").read_text().splitlines()[0].split()
    assert len(line) == 5 and line[0] == "0"
    ds2 = sv.DetectionDataset.from_yolo(
        str(tmp_path / "box" / "images"),
        str(tmp_path / "box" / "labels"),
        str(tmp_path / "box" / "data.yaml"),
    )
    got = {Path(p).stem: det for p, _, det in ds2}["cam-001"]
    np.testing.assert_allclose(got.xyxy, items[1].detections.xyxy, atol=1.01)


def test_bad_label_requests_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="coco"):
        export_labels([], CLASSES, tmp_path, fmt="voc")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="class"):
        export_labels([], [], tmp_path)
    with pytest.raises(ConfigError, match="duplicate"):
        export_labels(_items()[:1] * 2, CLASSES, tmp_path / "dup")
