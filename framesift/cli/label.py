"""``framesift label --store DIR --prompt ... --format coco|yolo [--segment] [-o OUT]``.

Auto-labels the kept frames of a frame store (``framesift collect`` output) — or, when DIR has no
store index, every image in the folder — with YOLO-World boxes (and SAM masks with ``--segment``),
and writes a COCO or YOLO dataset through supervision's dataset tools.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framesift.cli.detect import add_model_args, build_models
from framesift.errors import EXIT_OK, ConfigError, SourceError
from framesift.progress import Bar

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "label",
        help="auto-label stored frames as a COCO or YOLO dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--store", required=True, help="frame store folder (or a folder of images)")
    add_model_args(p)
    p.add_argument("--format", default="coco", choices=["coco", "yolo"], dest="fmt")
    p.add_argument("--masks", default="rle", choices=["rle", "polygon"], help="COCO mask encoding")
    p.add_argument("-o", "--output", default=None, help="dataset folder (default: DIR/labels-FORMAT)")
    p.add_argument("--source", default=None, help="only frames of this source (frame store)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_label)


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SourceError(f"{path}: cannot read the image (missing or not an image file)", source=str(path))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def iter_images(store: Path, source: str | None = None) -> tuple[int, Iterator[tuple[str, np.ndarray]]]:
    """How many, and the (name, RGB image) pairs, of a frame store's kept frames, else of a folder's
    image files. Bad input is reported here, before any image is read."""
    if not store.is_dir():
        raise ConfigError(f"--store {store}: not a folder; pass a frame store or a folder of images")
    if (store / "index.sqlite").is_file():
        from framesift.store.index import FrameStore

        with FrameStore(store, readonly=True) as fs:
            count = fs.count(source)

        def stored() -> Iterator[tuple[str, np.ndarray]]:
            with FrameStore(store, readonly=True) as fs:
                for rec in fs.records(source=source):
                    yield rec.id, _read(store / rec.path)

        return count, stored()
    files = sorted(p for p in store.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise ConfigError(f"--store {store}: no frame store index and no images found")
    return len(files), (
        (str(p.relative_to(store).with_suffix("")).replace("/", "__"), _read(p)) for p in files
    )


def cmd_label(args: argparse.Namespace) -> int:
    from framesift.labels import LabeledImage, LabelWriter

    store = Path(args.store)
    out = Path(args.output) if args.output else store / f"labels-{args.fmt}"
    total, images = iter_images(store, args.source)  # bad input fails before models load
    detector, segmenter = build_models(args)
    writer = LabelWriter(out, list(detector.prompts), fmt=args.fmt, mask_format=args.masks)
    batch: list[tuple[str, np.ndarray]] = []

    def flush() -> int:
        dets = detector.detect([img for _, img in batch])
        for (name, img), det in zip(batch, dets, strict=True):
            if segmenter is not None:
                segmenter.segment_detections(img, det)
            writer.add(LabeledImage(name, img, det))
        n = len(batch)
        batch.clear()
        return n

    with Bar(
        total=total, unit="image", desc="label", disable=args.no_progress or None, file=sys.stderr
    ) as bar:
        for item in images:
            batch.append(item)
            if len(batch) >= max(1, args.batch):
                bar.update(flush())
        if batch:
            bar.update(flush())
    counts = writer.close()
    print(f"{counts['images']} images, {counts['annotations']} labels ({args.fmt}) → {out}", file=sys.stderr)
    return EXIT_OK
