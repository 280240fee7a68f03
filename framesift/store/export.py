"""Datasets from a frame store: COCO, YOLO or folder-per-source, with a deterministic train/val split.

The split depends only on ``sha256(f"{seed}:{id}")``, so a frame stays in the same split when the
store grows and a re-export is identical. Labels are empty for now: every item carries a ``boxes``
list, which the detection issue fills (class name + xyxy pixels); the writers already emit whatever
boxes they are given (COCO annotations, YOLO label lines).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from framesift.errors import ConfigError
from framesift.store.index import FrameStore, StoredFrame

Format = Literal["coco", "yolo", "folder"]
FORMATS = ("coco", "yolo", "folder")


@dataclass(frozen=True)
class Box:
    """One labelled box in pixels (xyxy)."""

    class_name: str
    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0


@dataclass
class ExportItem:
    """One frame to export, with its split and (future) labels."""

    frame: StoredFrame
    src: Path
    split: str
    file_name: str
    boxes: list[Box] = field(default_factory=list)


def split_of(frame_id: str, val_fraction: float, seed: int = 0) -> str:
    """``'val'`` for a stable ``val_fraction`` of ids, else ``'train'``."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{frame_id}".encode()).digest()[:8], "big")
    return "val" if h / 2**64 < val_fraction else "train"


def plan_export(store: FrameStore, val_fraction: float = 0.2, seed: int = 0) -> list[ExportItem]:
    """Every stored frame (oldest first) with its split and output file name."""
    items = []
    for f in store.records():
        name = f"{f.source}__{Path(f.path).name}".replace("/", "_")
        items.append(ExportItem(f, store.root / f.path, split_of(f.id, val_fraction, seed), name))
    return items


def _place(src: Path, dst: Path) -> None:
    """Hard-link (same filesystem) or copy; atomic per file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):
        return  # already linked by an earlier export (rename onto the same inode would be a no-op)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _classes(items: Sequence[ExportItem]) -> list[str]:
    return sorted({b.class_name for it in items for b in it.boxes})


def _coco(items: Sequence[ExportItem], out: Path) -> dict[str, int]:
    classes = _classes(items)
    cat_id = {c: i + 1 for i, c in enumerate(classes)}
    counts = {}
    for split in ("train", "val"):
        images: list[dict[str, Any]] = []
        anns: list[dict[str, Any]] = []
        for it in (i for i in items if i.split == split):
            _place(it.src, out / "images" / split / it.file_name)
            img_id = len(images) + 1
            f = it.frame
            images.append({
                "id": img_id, "file_name": f"{split}/{it.file_name}", "width": f.width, "height": f.height,
                "framesift_id": f.id, "source": f.source, "time": f.time, "wallclock": f.wallclock,
                "reason": f.reason, "scores": f.scores,
            })  # fmt: skip
            for b in it.boxes:
                w, h = b.x2 - b.x1, b.y2 - b.y1
                anns.append({
                    "id": len(anns) + 1, "image_id": img_id, "category_id": cat_id[b.class_name],
                    "bbox": [b.x1, b.y1, w, h], "area": w * h, "iscrowd": 0, "score": b.score,
                })  # fmt: skip
        _write_json(
            out / "annotations" / f"instances_{split}.json",
            {
                "info": {"description": "framesift export", "version": "1"},
                "images": images,
                "annotations": anns,
                "categories": [{"id": cat_id[c], "name": c, "supercategory": ""} for c in classes],
            },
        )
        counts[split] = len(images)
    return counts


def _yolo(items: Sequence[ExportItem], out: Path) -> dict[str, int]:
    classes = _classes(items)
    idx = {c: i for i, c in enumerate(classes)}
    counts = {"train": 0, "val": 0}
    for it in items:
        _place(it.src, out / "images" / it.split / it.file_name)
        f = it.frame
        lines = []
        for b in it.boxes:
            cx, cy = (b.x1 + b.x2) / 2 / f.width, (b.y1 + b.y2) / 2 / f.height
            w, h = (b.x2 - b.x1) / f.width, (b.y2 - b.y1) / f.height
            lines.append(f"{idx[b.class_name]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        label = out / "labels" / it.split / (Path(it.file_name).stem + ".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(lines), encoding="utf-8")
        counts[it.split] += 1
    names = "\n".join(f"  {i}: {json.dumps(c)}" for i, c in enumerate(classes))
    (out / "data.yaml").write_text(
        f"# framesift export (YOLO layout)\npath: {out.resolve()}\ntrain: images/train\nval: images/val\n"
        f"nc: {len(classes)}\nnames:{' {}' if not classes else ''}\n{names}\n",
        encoding="utf-8",
    )
    return counts


def _folder(items: Sequence[ExportItem], out: Path) -> dict[str, int]:
    counts = {"train": 0, "val": 0}
    for it in items:
        _place(it.src, out / it.split / it.frame.source / Path(it.frame.path).name)
        counts[it.split] += 1
    return counts


def export_dataset(
    store_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    fmt: str = "coco",
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Export every kept frame of ``store_dir`` to ``out_dir``; returns a summary (counts per split)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out_dir)
    with FrameStore(store_dir, readonly=True) as store:
        items = plan_export(store, val_fraction, seed)
        missing = [str(it.src) for it in items if not it.src.is_file()]
        if missing:
            raise ConfigError(f"{store_dir}: {len(missing)} indexed image(s) missing, e.g. {missing[0]}")
        out.mkdir(parents=True, exist_ok=True)
        writer = {"coco": _coco, "yolo": _yolo, "folder": _folder}[fmt]
        counts = writer(items, out)
    summary = {"format": fmt, "out": str(out), "frames": len(items), "seed": seed, "val_fraction": val_fraction,
               **counts}  # fmt: skip
    _write_json(out / "framesift_export.json", summary)
    return summary
