"""``framesift export``: build and cache model engines (``framesift export clip ...``).

The first positional argument names what to export; only ``clip`` exists today. (A dataset form,
``framesift export --store DIR --format coco|yolo``, can be added to this parser: leave
``model_family`` empty and dispatch on ``--store``.)
"""

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
        help="build and cache model engines (ONNX, TensorRT)",
        description="Build engines for a model and store them in the engine cache. Example: "
        "framesift export clip --model ViT-B-32 --pretrained openai --runtime onnxruntime --out engines/",
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
    g.add_argument("--out", help="also copy the built artefacts into this directory")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    if args.model_family is None:
        raise ConfigError(
            "framesift export: say what to export, e.g. `framesift export clip --model ViT-B-32`"
        )
    return export_clip(args)


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
