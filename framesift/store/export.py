"""Datasets from a frame store: COCO, YOLO or folder-per-source, with a deterministic train/val split.

The split depends only on ``sha256(f"{seed}:{id}")``, so a frame stays in the same split when the
store grows and a re-export is identical; ``framesift label`` splits by the same rule, so a frame is
in the same split in both datasets. COCO and YOLO go through the one dataset writer
(:mod:`framesift.store.dataset`, shared with ``framesift label``).

Stored frames carry no labels (``boxes`` is empty unless a caller fills it). COCO then has images
and no annotations; YOLO is refused (``nc: 0`` is accepted by no YOLO trainer): ``framesift label``
writes a labelled YOLO dataset from the same store.

The index is not trusted: a path that leads outside the store is refused, a file whose content
does not match the sha256 recorded at write time is skipped; both are counted in the summary and
logged in one warning each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from framesift.errors import ConfigError
from framesift.store.dataset import DatasetWriter, atomic_write, place
from framesift.store.index import FrameStore, StoredFrame
from framesift.store.paths import inside, resolve_store_dir, safe_component
from framesift.store.recovery import warn_refused

log = logging.getLogger("framesift.store.export")

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
    """One frame to export, with its split and labels (``boxes``, empty for stored frames)."""

    frame: StoredFrame
    src: Path
    split: str
    file_name: str
    boxes: list[Box] = field(default_factory=list)


def split_of(frame_id: str, val_fraction: float, seed: int = 0) -> str:
    """``'val'`` for a stable ``val_fraction`` of ids, else ``'train'``."""
    h = int.from_bytes(hashlib.sha256(f"{seed}:{frame_id}".encode()).digest()[:8], "big")
    return "val" if h / 2**64 < val_fraction else "train"


def _plan(store: FrameStore, val_fraction: float, seed: int) -> tuple[list[ExportItem], int, int]:
    """Items whose path stays inside the store (one per file and name); and how many were refused
    (outside the store) and dropped as duplicates (two rows naming one file)."""
    items: list[ExportItem] = []
    refused = duplicates = 0
    seen: set[str] = set()
    for f in store.records():
        src = inside(store.root, f.path)
        if src is None:
            refused += 1
            continue
        name = safe_component(f"{f.source}__{Path(f.path).name}")
        key = str(src.resolve())
        if key in seen or name in seen:
            duplicates += 1
            continue
        seen.update((key, name))
        items.append(ExportItem(f, src, split_of(f.id, val_fraction, seed), name))
    warn_refused(store.root, refused, "planning an export")
    return items, refused, duplicates


def plan_export(store: FrameStore, val_fraction: float = 0.2, seed: int = 0) -> list[ExportItem]:
    """Every stored frame (oldest first) whose file is inside the store, with its split and file name."""
    return _plan(store, val_fraction, seed)[0]


def _matches(path: Path, sha256: str) -> bool:
    """``path`` is a regular file whose content has the recorded sha256."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha256.strip().lower()


def verify(items: Sequence[ExportItem], root: Path) -> tuple[list[ExportItem], int]:
    """Items whose file matches the sha256 the index recorded at write time; and how many did not."""
    good = [it for it in items if _matches(it.src, it.frame.sha256)]
    bad = len(items) - len(good)
    if bad:
        log.warning(
            "frame store %s: skipped %d frame(s) whose file does not match the sha256 in the index "
            "(changed or replaced after it was stored)",
            root, bad,
        )  # fmt: skip
    return good, bad


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1).encode())


def _classes(items: Sequence[ExportItem]) -> list[str]:
    return sorted({b.class_name for it in items for b in it.boxes})


def _detections(boxes: Sequence[Box], classes: list[str]) -> Any:
    if not boxes:
        return None
    import supervision as sv

    return sv.Detections(
        xyxy=np.array([[b.x1, b.y1, b.x2, b.y2] for b in boxes], np.float32),
        confidence=np.array([b.score for b in boxes], np.float32),
        class_id=np.array([classes.index(b.class_name) for b in boxes], int),
    )


def _write(items: Sequence[ExportItem], out: Path, fmt: Literal["coco", "yolo"]) -> dict[str, int]:
    classes = _classes(items)
    with DatasetWriter(out, classes, fmt=fmt, description="framesift export") as writer:
        for it in items:
            f = it.frame
            writer.add(
                split=it.split, file_name=it.file_name, width=f.width, height=f.height, src=it.src,
                detections=_detections(it.boxes, classes),
                extra={"framesift_id": f.id, "source": f.source, "time": f.time, "wallclock": f.wallclock,
                       "reason": f.reason, "scores": f.scores},
            )  # fmt: skip
    return dict(writer.counts)


def _coco(items: Sequence[ExportItem], out: Path) -> dict[str, int]:
    return _write(items, out, "coco")


def _yolo(items: Sequence[ExportItem], out: Path) -> dict[str, int]:
    return _write(items, out, "yolo")


def _folder(items: Sequence[ExportItem], out: Path) -> dict[str, int]:
    counts = {"train": 0, "val": 0}
    for it in items:
        place(
            it.src,
            out / it.split / safe_component(it.frame.source) / safe_component(Path(it.frame.path).name),
        )
        counts[it.split] += 1
    return counts


def export_dataset(
    store_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    fmt: str = "coco",
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Export every kept frame of ``store_dir`` (a store, or a ``framesift collect`` output folder) to
    ``out_dir``; returns a summary (counts per split, frames refused or skipped)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out_dir)
    root = resolve_store_dir(store_dir)
    with FrameStore(root, readonly=True) as store:
        items, refused, duplicates = _plan(store, val_fraction, seed)
        if fmt == "yolo" and not any(it.boxes for it in items):
            raise ConfigError(
                f"{store_dir}: the store's frames have no labels, and a YOLO dataset without classes "
                f"(nc: 0) is refused by YOLO trainers; label them with `framesift label --store {store_dir} "
                "--prompt ... --format yolo`, or export --format coco or folder"
            )
        missing = [str(it.src) for it in items if not it.src.exists()]
        if missing:
            raise ConfigError(f"{store_dir}: {len(missing)} indexed image(s) missing, e.g. {missing[0]}")
        items, mismatched = verify(items, root)
        out.mkdir(parents=True, exist_ok=True)
        writer = {"coco": _coco, "yolo": _yolo, "folder": _folder}[fmt]
        counts = writer(items, out)
    summary = {"format": fmt, "out": str(out), "frames": len(items), "seed": seed, "val_fraction": val_fraction,
               **counts, "refused_paths": refused, "sha256_mismatch": mismatched,
               "duplicates": duplicates}  # fmt: skip
    _write_json(out / "framesift_export.json", summary)
    return summary
