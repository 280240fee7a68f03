"""``framesift export``: model engines (``export clip ...``) or a dataset from a frame store
(``export --store DIR --format coco|yolo|folder --out OUT``)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from framesift.errors import ConfigError

FAMILIES = ("clip",)


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="build and cache model engines (ONNX, TensorRT), or export a dataset from a frame store",
        description="Build engines for a model and store them in the engine cache, e.g. "
        "`framesift export clip --model ViT-B-32 --pretrained openai --runtime onnxruntime --out engines/`; "
        "or export kept frames as a dataset, e.g. "
        "`framesift export --store collect-out/ --format coco --out dataset/`.",
    )
    p.add_argument("model_family", nargs="?", choices=FAMILIES, help="what to export (clip)")
    g = p.add_argument_group("clip")
    g.add_argument("--model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--pretrained", help="open_clip pretrained tag (downloaded by open_clip if not cached)")
    w.add_argument("--checkpoint", help="local weights file (.pt/.bin/.safetensors)")
    w.add_argument(
        "--random-weights", action="store_true", help="export random weights (for benchmarks and tests only)"
    )
    g.add_argument("--runtime", default="onnxruntime", choices=["onnxruntime", "tensorrt"])
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    g.add_argument("--max-batch", type=int, default=64, help="optimisation batch size (TensorRT profile)")
    g.add_argument(
        "--cache-dir", help="engine cache (default $FRAMESIFT_CACHE or ~/.cache/framesift/engines)"
    )
    g.add_argument(
        "-o",
        "--out",
        "--output",
        help="clip: also copy the built artefacts here; dataset: the output directory",
    )
    d = p.add_argument_group("dataset")
    d.add_argument("--store", help="frame store (or `framesift collect` output directory) to export")
    d.add_argument("--format", default="coco", choices=["coco", "yolo", "folder"], help="dataset layout")
    d.add_argument("--val-fraction", type=float, default=0.2, help="share of frames in val (default 0.2)")
    d.add_argument("--seed", type=int, default=0, help="split seed (deterministic)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    if args.store is not None:
        if args.model_family is not None:
            raise ConfigError("framesift export: give either a model family (clip) or --store, not both")
        return export_store(args)
    if args.model_family is None:
        raise ConfigError(
            "framesift export: say what to export, e.g. `framesift export clip --model ViT-B-32` "
            "or `framesift export --store DIR --format coco --out DATASET`"
        )
    return export_clip(args)


def export_store(args: argparse.Namespace) -> int:
    """Kept frames of a store → COCO / YOLO / folder dataset with a deterministic train/val split."""
    from framesift.store.export import export_dataset

    if not args.out:
        raise ConfigError("framesift export --store: give --out DIR for the dataset")
    summary = export_dataset(
        args.store, args.out, args.format, val_fraction=args.val_fraction, seed=args.seed
    )
    print(f"dataset  {args.format} in {args.out}")
    for key, value in summary.items():
        print(f"  {key:<12} {value}")
    return 0


def export_clip(args: argparse.Namespace) -> int:
    if not (args.pretrained or args.checkpoint or args.random_weights):
        raise ConfigError(
            "framesift export clip: give --pretrained TAG (e.g. openai) or --checkpoint PATH "
            "(or --random-weights for a benchmark engine)"
        )
    if args.max_batch < 1:
        raise ConfigError(f"--max-batch must be ≥ 1 (got {args.max_batch})")
    from framesift.engines.models.clip import ClipEmbedder

    emb = ClipEmbedder(
        args.model,
        pretrained=args.pretrained,
        checkpoint=args.checkpoint,
        runtime=args.runtime,
        device=args.device,
        precision=args.precision,
        max_batch=args.max_batch,
        cache_dir=args.cache_dir,
    )
    try:
        emb.prepare(text=True)
        print(f"engine   {emb.name} on {emb.device} ({emb.precision}), dim {emb.dim}")
        print(f"cache    {emb.cache.root}")
        for name, path in sorted(emb.artefacts.items()):
            print(f"{name:<11}{path}")
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            for path in sorted(emb.artefacts.values()):
                # the artefact and its siblings (external weights), not the cache manifest
                for src in sorted(path.parent.glob(f"{path.name}*")):
                    dest = out / src.name
                    fd, tmp = tempfile.mkstemp(prefix=f".{src.name}.", dir=out)
                    os.close(fd)
                    shutil.copyfile(src, tmp)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, dest)
                    print(f"copied   {dest}")
    finally:
        emb.close()
    return 0
