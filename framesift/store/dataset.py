"""COCO and YOLO datasets written one image at a time: the one writer behind ``framesift export
--store`` (:mod:`framesift.store.export`) and ``framesift label`` (:mod:`framesift.labels`).

One layout for both commands (images in one folder; the split is in index files)::

    images/<name>.<ext>
    COCO  annotations.json                         every image (category id = class index + 1)
          annotations/instances_{train,val}.json   the same entries and ids, one file per split
    YOLO  labels/<name>.txt                        class cx cy w h (boxes) or class x1 y1 ... (polygons)
          train.txt, val.txt                       ./images/<name> per line
          data.yaml                                train: train.txt, val: val.txt, nc, names

``data.yaml`` has no ``path:`` key on purpose: Ultralytics' ``check_det_dataset`` resolves the
dataset root as ``data["path"]`` or else the YAML file's own folder, and a relative ``path`` (such
as ``.``) against the *caller's* working directory (or its ``DATASETS_DIR``). Without it the dataset
works from any working directory and after being moved; the ``./images/...`` lines of the list
files are resolved against the list file's folder. If no image fell in ``val`` (a tiny dataset),
``val`` is ``train.txt`` and a warning says so: YOLO trainers need val images. supervision's loaders
read the flat folders directly (``from_yolo(images, labels, data.yaml)``, ``from_coco(images,
annotations.json)``).

Boxes are clipped to the image (YOLO trainers drop label files with coordinates outside 0..1).
COCO masks are RLE (``iscrowd=1``) or, with ``mask_format="polygon"``, polygons where a mask has one
part and no hole; annotations are converted per image (supervision's dataset tools), so memory holds
one image's masks at a time. Index files are written at :meth:`DatasetWriter.close` under a
temporary name, then renamed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np

from framesift.errors import ConfigError, SinkError

log = logging.getLogger("framesift.store.dataset")

Format = Literal["coco", "yolo"]
MaskFormat = Literal["rle", "polygon"]
SPLITS = ("train", "val")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def place(src: Path, dst: Path) -> None:
    """Hard-link (same filesystem) or copy ``src`` to ``dst``; atomic per file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):
        return  # already linked by an earlier export (rename onto the same inode would be a no-op)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _clipped(det: Any, width: int, height: int) -> Any:
    """A copy of ``det`` with its boxes inside the image."""
    det = det[np.arange(len(det))]
    xyxy = np.asarray(det.xyxy, dtype=np.float32).copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    det.xyxy = xyxy
    return det


class DatasetWriter:
    """Writes a COCO or YOLO dataset (layout in the module docstring); use as a context manager."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        classes: list[str],
        *,
        fmt: Format = "coco",
        mask_format: MaskFormat = "rle",
        approximation: float = 0.0,
        description: str = "framesift dataset",
    ) -> None:
        if fmt not in ("coco", "yolo"):
            raise ConfigError(f"dataset format must be 'coco' or 'yolo', got {fmt!r}")
        if mask_format not in ("rle", "polygon"):
            raise ConfigError(f"mask format must be 'rle' or 'polygon', got {mask_format!r}")
        if fmt == "yolo" and not classes:
            raise ConfigError("a YOLO dataset needs at least one class name (YOLO trainers refuse nc: 0)")
        self.out = Path(out_dir)
        self.classes = list(classes)
        self.fmt, self.mask_format, self.approximation = fmt, mask_format, approximation
        self.description = description
        self.images: list[dict[str, Any]] = []  # COCO image entries
        self.annotations: list[dict[str, Any]] = []
        self._split: dict[int, str] = {}  # COCO image id -> split
        self._lists: dict[str, list[str]] = {s: [] for s in SPLITS}  # YOLO list files
        self.counts = {s: 0 for s in SPLITS}
        self.labels = 0  # annotations (COCO) or label lines (YOLO)
        self._names: set[str] = set()
        try:
            (self.out / "images").mkdir(parents=True, exist_ok=True)
            if fmt == "yolo":
                (self.out / "labels").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create dataset folder {self.out}: {exc}", transient=False) from exc

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, file_name: object) -> bool:
        """Whether an image of that file name was added."""
        return file_name in self._names

    def add(
        self,
        *,
        split: str,
        file_name: str,
        width: int,
        height: int,
        detections: Any = None,
        image: bytes | None = None,
        src: Path | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """One image — encoded ``image`` bytes, or the file ``src`` (hard-linked or copied) — and its
        ``detections`` (an ``sv.Detections`` whose ``class_id`` indexes ``classes``; None: no labels).
        ``extra`` goes into the COCO image entry."""
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if file_name in self._names or "/" in file_name or file_name.startswith("."):
            raise ConfigError(f"image name {file_name!r} is a duplicate or not a plain file name")
        self._names.add(file_name)
        dst = self.out / "images" / file_name
        if src is not None:
            place(src, dst)
        elif image is not None:
            atomic_write(dst, image)
        else:
            raise ValueError("DatasetWriter.add needs image bytes or a src file")
        self.counts[split] += 1
        det = None if detections is None or len(detections) == 0 else _clipped(detections, width, height)
        if det is not None:
            ids = np.asarray(det.class_id) if det.class_id is not None else None
            if ids is None or ids.min() < 0 or ids.max() >= len(self.classes):
                raise ConfigError(
                    f"{file_name}: detection class ids must be 0..{len(self.classes) - 1} (one per class name)"
                )
        if self.fmt == "coco":
            self._add_coco(split, file_name, width, height, det, extra or {})
        else:
            self._lists[split].append(f"./images/{file_name}")
            self._add_yolo(Path(file_name).stem, width, height, det)

    def _add_coco(self, split: str, file_name: str, w: int, h: int, det: Any, extra: dict[str, Any]) -> None:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "width": w, "height": h, **extra})
        self._split[image_id] = split
        if det is None:
            return
        from supervision.dataset.formats.coco import detections_to_coco_annotations

        if det.mask is not None and self.mask_format == "rle":
            det.data["iscrowd"] = np.ones(len(det), int)
        # "polygon": supervision writes polygons (iscrowd=0), except masks with holes or several
        # parts, which polygons cannot hold: those stay RLE (iscrowd=1)
        new, _ = detections_to_coco_annotations(
            det,
            image_id=image_id,
            annotation_id=len(self.annotations) + 1,
            approximation_percentage=self.approximation,
        )
        confidence = det.confidence if det.confidence is not None else [None] * len(new)
        for a, conf in zip(new, confidence, strict=True):
            a["bbox"] = [float(v) for v in a["bbox"]]
            a["area"] = float(a["area"])
            if isinstance(a["segmentation"], list):
                a["segmentation"] = [[float(v) for v in poly] for poly in a["segmentation"]]
            if conf is not None:
                a["score"] = float(conf)
        self.annotations.extend(new)
        self.labels += len(new)

    def _add_yolo(self, stem: str, w: int, h: int, det: Any) -> None:
        lines: list[str] = []
        if det is not None and det.mask is not None:
            from supervision.dataset.formats.yolo import detections_to_yolo_annotations

            lines = detections_to_yolo_annotations(
                det, (h, w, 3), approximation_percentage=self.approximation
            )
        elif det is not None:
            for (x1, y1, x2, y2), k in zip(det.xyxy, det.class_id, strict=True):
                cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
                lines.append(f"{int(k)} {cx:.6f} {cy:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
        self.labels += len(lines)
        atomic_write(self.out / "labels" / f"{stem}.txt", "".join(f"{line}\n" for line in lines).encode())

    def add_part(self, part: Path) -> None:
        """Take in the dataset another writer of the same settings wrote into ``part`` (closed): its
        images and YOLO label files are placed here (hard-linked or copied), its COCO entries appended
        with their ids renumbered after this writer's, as if its images had been added here."""
        if self.fmt == "coco":
            doc = json.loads((part / "annotations.json").read_bytes())
            val_doc = json.loads((part / "annotations" / "instances_val.json").read_bytes())
            val = {im["id"] for im in val_doc["images"]}
            ids: dict[int, int] = {}
            for im in doc["images"]:
                self._take(part, im["file_name"])
                ids[im["id"]] = len(self.images) + 1
                split = "val" if im["id"] in val else "train"
                self.images.append({**im, "id": ids[im["id"]]})
                self._split[ids[im["id"]]] = split
                self.counts[split] += 1
            for a in doc["annotations"]:
                self.annotations.append(
                    {**a, "id": len(self.annotations) + 1, "image_id": ids[a["image_id"]]}
                )
                self.labels += 1
            return
        for split in SPLITS:
            for line in (part / f"{split}.txt").read_text().splitlines():
                file_name = line.removeprefix("./images/")
                self._take(part, file_name)
                label = f"{Path(file_name).stem}.txt"
                place(part / "labels" / label, self.out / "labels" / label)
                self.labels += len((part / "labels" / label).read_text().splitlines())
                self._lists[split].append(line)
                self.counts[split] += 1

    def _take(self, part: Path, file_name: str) -> None:
        if file_name in self._names:
            raise ConfigError(f"image name {file_name!r} is in two parts of the dataset")
        self._names.add(file_name)
        place(part / "images" / file_name, self.out / "images" / file_name)

    def close(self) -> dict[str, int]:
        """Write the index files; returns counts (train, val, images, annotations)."""
        if self.fmt == "coco":
            self._write_coco()
        else:
            self._write_yolo()
        total = self.counts["train"] + self.counts["val"]
        return {**self.counts, "images": total, "annotations": self.labels}

    def _write_coco(self) -> None:
        categories = [{"id": i + 1, "name": c, "supercategory": ""} for i, c in enumerate(self.classes)]

        def doc(images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> bytes:
            info = {"description": self.description, "version": "1"}
            body = {"info": info, "licenses": [], "images": images, "annotations": annotations}
            return json.dumps({**body, "categories": categories}, indent=1).encode()

        atomic_write(self.out / "annotations.json", doc(self.images, self.annotations))
        for split in SPLITS:
            images = [im for im in self.images if self._split[im["id"]] == split]
            anns = [a for a in self.annotations if self._split[a["image_id"]] == split]
            atomic_write(self.out / "annotations" / f"instances_{split}.json", doc(images, anns))

    def _write_yolo(self) -> None:
        import yaml

        for split in SPLITS:
            atomic_write(
                self.out / f"{split}.txt", "".join(f"{line}\n" for line in self._lists[split]).encode()
            )
        val = "val.txt"
        if self.counts["val"] == 0 and self.counts["train"] > 0:
            val = "train.txt"
            log.warning(
                "dataset %s: no image fell in the val split (%d images); data.yaml's val is train.txt: "
                "YOLO trainers need val images",
                self.out, self.counts["train"],
            )  # fmt: skip
        data = {"train": "train.txt", "val": val, "nc": len(self.classes), "names": self.classes}
        head = (
            f"# {self.description} (YOLO). No `path:` key: Ultralytics resolves train/val against this\n"
            "# file's folder, so the dataset works from any working directory and after a move.\n"
        )
        atomic_write(self.out / "data.yaml", (head + yaml.safe_dump(data, sort_keys=False)).encode())
