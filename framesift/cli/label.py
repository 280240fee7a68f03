"""``framesift label --store DIR --prompt ... --format coco|yolo [--segment] [-o OUT]``.

Auto-labels the kept frames of a frame store (``framesift collect -o DIR`` output: DIR or DIR/store)
— or, when DIR holds no store, every image in the folder — with YOLO-World boxes (and SAM masks with
``--segment``), and writes a COCO or YOLO dataset. It runs the pipeline: a ``store`` (or ``images``)
source → the ``detect`` analyzer → the ``labels`` sink.

With ``--ray ADDRESS`` the frames are labelled in chunks of ``--chunk N`` on a Ray cluster and merged
into one dataset equal to a local run's; the store and the output must be on shared storage
(docs/scale.md).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from framesift.cli.detect import add_model_args, check_model, engine_configs
from framesift.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError

DEFAULT_CHUNK = 256  # frames per chunk with --ray


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
    p.add_argument(
        "-o", "--output", default=None, help="dataset folder (default: DIR-labels-FORMAT beside DIR)"
    )
    p.add_argument("--source", default=None, help="only frames of this source (frame store)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from framesift.cli.scenes import add_ray_options

    g = add_ray_options(
        p, shards=False, note=". The store and the output must be on storage every node shares"
    )
    g.add_argument(
        "--chunk",
        type=int,
        default=None,
        metavar="N",
        help=f"with --ray: frames per chunk (each chunk is one task; default {DEFAULT_CHUNK})",
    )
    p.set_defaults(func=cmd_label)


def label_source(folder: Path, source: str | None) -> dict[str, Any]:
    """The source reading what ``--store`` names: a frame store (DIR or DIR/store), else a folder of
    images. Bad input is reported here, before any model loads."""
    from framesift.store.index import INDEX_NAME

    if not folder.is_dir():
        raise ConfigError(f"--store {folder}: not a folder; pass a frame store or a folder of images")
    if (folder / INDEX_NAME).is_file() or (folder / "store" / INDEX_NAME).is_file():
        return {"type": "store", "id": "store", "path": str(folder), "source": source}
    from framesift.stream.sources.images import list_images

    if not list_images(str(folder)):
        raise ConfigError(f"--store {folder}: no frame store index and no images found")
    return {"type": "images", "id": "images", "path": str(folder)}


def default_output(folder: Path, fmt: str) -> Path:
    """Beside the input, never inside it (a second run must not label the first run's dataset)."""
    base = folder.parent if folder.name == "store" and (folder.parent / "store").is_dir() else folder
    return base.with_name(f"{base.name}-labels-{fmt}")


def label_config(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The pipeline config ``label`` runs (as a dict: every chunk of ``--ray`` restricts its source)
    and the dataset folder. With ``--ray`` every path is absolute: workers run elsewhere."""
    folder = Path(args.store)
    _check_ray_options(args)
    if args.ray:
        folder = folder.absolute()
    source = label_source(folder, args.source)  # bad input fails before models load
    check_model(args)
    out = Path(args.output) if args.output else default_output(folder, args.fmt)
    engines = engine_configs(args)
    if args.ray:
        out = out.absolute()
        for key in ("model", "calibration"):
            value = engines["detector"].get(key)
            if isinstance(value, str) and Path(value).exists():
                engines["detector"][key] = str(Path(value).absolute())
        checkpoint = engines.get("segment", {}).get("checkpoint")
        if checkpoint:
            engines["segment"]["checkpoint"] = str(Path(checkpoint).absolute())
    sink = {
        "type": "labels",
        "dir": str(out),
        "format": args.fmt,
        "masks": args.masks,
        "classes": engines["detector"]["prompts"],
    }
    raw = {
        "sources": [source],
        "analyzers": [{"type": "detect", **engines}],
        "sinks": [sink],
        "stage": {"max_batch": max(1, args.batch)},
        "metrics": {"enabled": False},
    }
    return raw, out


def cmd_label(args: argparse.Namespace) -> int:
    from framesift.cli.runner import run_pipeline
    from framesift.config import parse_config
    from framesift.pipeline import Pipeline
    from framesift.sinks.labels import LabelsSink

    raw, out = label_config(args)
    cfg = parse_config(raw, where="label")  # one line per bad option, before any model loads
    if args.ray:
        return _label_on_ray(args, raw, cfg, out)
    pipeline = Pipeline(cfg)  # loads the models
    stopped_by = run_pipeline(pipeline, progress=not args.no_progress)
    counts = next(w.sink.counts for w in pipeline.sinks.workers if isinstance(w.sink, LabelsSink))
    print(f"{counts['images']} images, {counts['annotations']} labels ({args.fmt}) → {out}", file=sys.stderr)
    if stopped_by == signal.SIGINT:
        print("framesift: interrupted (drained and flushed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _check_ray_options(args: argparse.Namespace) -> None:
    if args.chunk is not None and args.chunk < 1:
        raise ConfigError(f"--chunk {args.chunk}: give a number of frames, 1 or more")
    if args.ray_gpus < 0:
        raise ConfigError(f"--ray-gpus {args.ray_gpus}: give 0 or more")
    if not args.ray and (args.chunk is not None or args.ray_gpus):
        raise ConfigError("--chunk and --ray-gpus apply with --ray ADDRESS")


def _label_on_ray(args: argparse.Namespace, raw: dict[str, Any], cfg: Any, out: Path) -> int:
    """Chunks of the input on the cluster, merged into one dataset in ``out`` (docs/scale.md)."""
    from framesift.cluster.label import run_on_ray
    from framesift.cluster.ray_exec import print_stats

    total = cfg.sources[0].frame_count()
    if total is None:
        raise ConfigError(f"--store {args.store}: cannot read its frame count")
    counts, stats = run_on_ray(
        raw, total=total, chunk=args.chunk or DEFAULT_CHUNK, address=args.ray, gpus=args.ray_gpus,
        quiet=args.no_progress,
    )  # fmt: skip
    print_stats(stats)
    print(f"{counts['images']} images, {counts['annotations']} labels ({args.fmt}) → {out}", file=sys.stderr)
    return EXIT_OK
