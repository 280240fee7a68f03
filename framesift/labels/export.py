"""Streaming COCO / YOLO export of labelled frames (boxes, and masks) for ``framesift label``.

A thin layer over :class:`framesift.store.dataset.DatasetWriter`, the one dataset writer that
``framesift export --store`` uses too, so both commands write the same layout::

    images/<name>.jpg
    COCO  annotations.json (+ annotations/instances_{train,val}.json)   category id = class index + 1;
          masks RLE with iscrowd=1, or polygons with iscrowd=0 where a mask has one part and no hole
    YOLO  labels/<name>.txt, train.txt, val.txt, data.yaml              boxes, or polygon segments
                                                                        when masks are present

An image's split is ``split_of(name, val_fraction, seed)``, the rule ``export --store`` uses on frame
ids, so a stored frame labelled by its id lands in the same split in both datasets. Images are
encoded and written one by one and their annotations converted immediately, so masks of one image
are never held together with those of the next.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from framesift.errors import ConfigError, SinkError
from framesift.store.dataset import DatasetWriter
from framesift.store.export import split_of

Format = Literal["coco", "yolo"]
MaskFormat = Literal["rle", "polygon"]
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass
class LabeledImage:
    """One frame to label: a file ``name`` (unique stem), RGB ``image`` and its detections."""

    name: str
    image: np.ndarray
    detections: Any


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
        val_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        if fmt not in ("coco", "yolo"):
            raise ConfigError(f"label format must be 'coco' or 'yolo', got {fmt!r}")
        if not classes:
            raise ConfigError("labels need at least one class (--prompt)")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.out = Path(out_dir)
        self.classes = list(classes)
        self.image_ext = image_ext
        self.val_fraction, self.seed = val_fraction, seed
        self.writer = DatasetWriter(
            self.out, self.classes, fmt=fmt, mask_format=mask_format, approximation=approximation,
            description="framesift auto-labels",
        )  # fmt: skip

    def __enter__(self) -> LabelWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, item: LabeledImage) -> None:
        """Write the image and its annotations."""
        stem = _SAFE.sub("_", Path(item.name).stem).lstrip(".") or "frame"
        file_name = stem + self.image_ext
        if file_name in self.writer:
            raise ConfigError(f"duplicate image name {stem!r} in label export: names must be unique")
        ok, buf = cv2.imencode(self.image_ext, cv2.cvtColor(np.asarray(item.image), cv2.COLOR_RGB2BGR))
        if not ok:
            raise SinkError(f"cannot encode image {file_name}", transient=False)
        h, w = int(item.image.shape[0]), int(item.image.shape[1])
        self.writer.add(
            split=split_of(item.name, self.val_fraction, self.seed), file_name=file_name, width=w, height=h,
            detections=item.detections, image=buf.tobytes(),
        )  # fmt: skip

    def add_part(self, part: Path) -> None:
        """Take in the dataset another writer of the same settings wrote into ``part`` (see
        :meth:`framesift.store.dataset.DatasetWriter.add_part`)."""
        self.writer.add_part(part)

    def close(self) -> dict[str, int]:
        """Write the index files; returns counts (images, annotations)."""
        counts = self.writer.close()
        return {"images": counts["images"], "annotations": counts["annotations"]}


def export_labels(
    items: Iterable[LabeledImage],
    classes: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    fmt: Format = "coco",
    mask_format: MaskFormat = "rle",
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, int]:
    """Write ``items`` as a COCO or YOLO dataset in ``out_dir``; returns counts."""
    writer = LabelWriter(
        out_dir, classes, fmt=fmt, mask_format=mask_format, val_fraction=val_fraction, seed=seed
    )
    for item in items:
        writer.add(item)
    return writer.close()
