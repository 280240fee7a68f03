"""Streaming COCO / YOLO export of frames + boxes (+ masks) through supervision's dataset tools.

Images are written one by one and their annotations converted immediately with supervision's
``detections_to_coco_annotations`` / ``detections_to_yolo_annotations``, so masks of one image are
never held together with those of the next (memory stays bounded on large stores). The COCO json
and YOLO ``data.yaml`` are written at :meth:`LabelWriter.close` under a temporary name, then renamed.

Layout: COCO → ``images/*.jpg`` + ``annotations.json`` (category ids = class index + 1; masks as
RLE with ``iscrowd=1``, or polygons with ``iscrowd=0`` where a mask has no hole and one part); YOLO → ``images/*.jpg``,
``labels/*.txt`` (boxes, or polygon segments when masks are present) and ``data.yaml``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from framesift.errors import ConfigError, SinkError

Format = Literal["coco", "yolo"]
MaskFormat = Literal["rle", "polygon"]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class LabeledImage:
    """One frame to label: a file ``name`` (unique stem), RGB ``image`` and its detections."""

    name: str
    image: np.ndarray
    detections: Any


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class LabelWriter:
    """Writes a COCO or YOLO dataset one image at a time; use as a context manager."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        classes: Sequence[str],
        *,
        fmt: Format = "coco",
        mask_format: MaskFormat = "rle",
        approximation: float = 0.0,
        image_ext: str = ".jpg",
    ) -> None:
        if fmt not in ("coco", "yolo"):
            raise ConfigError(f"label format must be 'coco' or 'yolo', got {fmt!r}")
        if mask_format not in ("rle", "polygon"):
            raise ConfigError(f"mask format must be 'rle' or 'polygon', got {mask_format!r}")
        if not classes:
            raise ConfigError("labels need at least one class (--prompt)")
        self.out = Path(out_dir)
        self.classes = list(classes)
        self.fmt, self.mask_format, self.approximation = fmt, mask_format, approximation
        self.image_ext = image_ext
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []
        self._names: set[str] = set()
        self._next_ann = 1
        self._yolo_lines = 0
        try:
            (self.out / "images").mkdir(parents=True, exist_ok=True)
            if fmt == "yolo":
                (self.out / "labels").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"cannot create label folder {self.out}: {exc}", transient=False) from exc

    def __enter__(self) -> LabelWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, item: LabeledImage) -> None:
        """Write the image and its annotations."""
        stem = _SAFE.sub("_", Path(item.name).stem) or "frame"
        if stem in self._names:
            raise ConfigError(f"duplicate image name {stem!r} in label export: names must be unique")
        self._names.add(stem)
        file_name = stem + self.image_ext
        ok, buf = cv2.imencode(self.image_ext, cv2.cvtColor(np.asarray(item.image), cv2.COLOR_RGB2BGR))
        if not ok:
            raise SinkError(f"cannot encode image {file_name}", transient=False)
        _atomic_write(self.out / "images" / file_name, buf.tobytes())
        det = item.detections
        h, w = int(item.image.shape[0]), int(item.image.shape[1])
        if self.fmt == "coco":
            self._add_coco(file_name, det, h, w)
        else:
            self._add_yolo(stem, det, h, w)

    def _add_coco(self, file_name: str, det: Any, h: int, w: int) -> None:
        from supervision.dataset.formats.coco import detections_to_coco_annotations

        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        if len(det) == 0:
            return
        if det.mask is not None and self.mask_format == "rle":
            det = det[np.arange(len(det))]  # copy: we set data["iscrowd"]
            det.data["iscrowd"] = np.ones(len(det), int)
        # "polygon": supervision writes polygons (iscrowd=0), except masks with holes or several
        # parts, which polygons cannot hold: those stay RLE (iscrowd=1)
        anns, self._next_ann = detections_to_coco_annotations(
            det, image_id=image_id, annotation_id=self._next_ann, approximation_percentage=self.approximation
        )
        for a in anns:
            a["bbox"] = [float(v) for v in a["bbox"]]
            a["area"] = float(a["area"])
            if isinstance(a["segmentation"], list):
                a["segmentation"] = [[float(v) for v in poly] for poly in a["segmentation"]]
        self.annotations.extend(anns)

    def _add_yolo(self, stem: str, det: Any, h: int, w: int) -> None:
        from supervision.dataset.formats.yolo import detections_to_yolo_annotations

        lines = detections_to_yolo_annotations(det, (h, w, 3), approximation_percentage=self.approximation)
        self._yolo_lines += len(lines)
        _atomic_write(
            self.out / "labels" / f"{stem}.txt", ("\n".join(lines) + ("\n" if lines else "")).encode()
        )

    def close(self) -> dict[str, int]:
        """Write the index files; returns counts (images, annotations)."""
        if self.fmt == "coco":
            from supervision.dataset.formats.coco import classes_to_coco_categories

            doc = {
                "info": {"description": "framesift auto-labels"},
                "licenses": [],
                "categories": classes_to_coco_categories(self.classes),
                "images": self.images,
                "annotations": self.annotations,
            }
            _atomic_write(self.out / "annotations.json", json.dumps(doc).encode())
            return {"images": len(self.images), "annotations": len(self.annotations)}
        import yaml

        data = {
            "nc": len(self.classes),
            "names": self.classes,
            "path": ".",
            "train": "images",
            "val": "images",
        }
        _atomic_write(self.out / "data.yaml", yaml.safe_dump(data, sort_keys=False).encode())
        return {"images": len(self._names), "annotations": self._yolo_lines}


def export_labels(
    items: Iterable[LabeledImage],
    classes: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    fmt: Format = "coco",
    mask_format: MaskFormat = "rle",
) -> dict[str, int]:
    """Write ``items`` as a COCO or YOLO dataset in ``out_dir``; returns counts."""
    writer = LabelWriter(out_dir, classes, fmt=fmt, mask_format=mask_format)
    for item in items:
        writer.add(item)
    return writer.close()
