"""``framesift detect VIDEO_OR_URL --prompt forklift --prompt person [--segment] [-o DIR]``.

Runs the pipeline: the source → the ``tracker`` analyzer (YOLO-World on batches, prompts → CLIP text
embeddings; SAM masks with ``--segment``; ByteTrack per source) → sinks writing into DIR:
``detections.jsonl`` (one line per track event), ``frames.jsonl`` (with ``--per-frame``),
``annotated.mp4`` (same frame count and timestamps as the input; ``--no-video`` to skip) and
``crops/`` (each track's best-scoring crop).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from framesift.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError, FramesiftError, SinkError

log = logging.getLogger("framesift.cli.detect")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Detector / segmenter options shared by ``detect`` and ``label``."""
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="object to find (repeat)")
    p.add_argument(
        "--model",
        default="s",
        help="YOLO-World v2: exported .onnx or .pt2, .pt checkpoint (export needs ultralytics, AGPL-3.0), or "
        "s/m/l/x for random weights (benchmarks only). Default: s",
    )
    p.add_argument("--imgsz", type=int, default=640, help="detector input size (multiple of 32)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    p.add_argument("--max-det", type=int, default=300, help="most boxes kept per frame")
    p.add_argument("--batch", type=int, default=8, help="frames per detector batch")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", "onnxruntime", "torch", "openvino"],
        help="detector runtime (auto: PyTorch on CUDA or on CPUs with native bf16, else ONNX Runtime)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        help="detector precision (auto: fp16 on CUDA, bf16 on AMX/AVX512-BF16 CPUs, else fp32)",
    )
    p.add_argument(
        "--calibration",
        default=None,
        metavar="VIDEO",
        help="with --precision int8: a video whose frames calibrate the INT8 engine (default: generated)",
    )
    p.add_argument(
        "--clip-pretrained",
        "--pretrained",
        dest="clip_pretrained",
        default="openai",
        help="CLIP ViT-B-32 text weights: open_clip tag, local checkpoint, or 'none' (random; tests "
        "only); --pretrained is the same flag",
    )
    p.add_argument("--segment", action="store_true", help="add SAM masks to every box")
    p.add_argument("--sam", default="vit_t", help="SAM model: vit_t (MobileSAM), vit_b/l/h, or ONNX folder")
    p.add_argument("--sam-checkpoint", default=None, help="SAM checkpoint (.pt); none = random weights")


def check_calibration(args: argparse.Namespace) -> None:
    """``--calibration`` only with ``--precision int8`` (detect, collect)."""
    if args.calibration is not None and args.precision != "int8":
        raise ConfigError("--calibration applies with --precision int8 (it calibrates the INT8 engine)")


def engine_configs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``detector`` and ``segment`` entries of a detect/tracker analyzer config, from the options
    (validated with the analyzer's model: one line per bad option)."""
    prompts = list(args.prompt)
    if not prompts or any(not p.strip() for p in prompts):
        raise ConfigError("no prompts given: name what to find with --prompt, e.g. --prompt forklift")
    check_calibration(args)
    pretrained = None if str(args.clip_pretrained).lower() == "none" else args.clip_pretrained
    out: dict[str, Any] = {
        "detector": {
            "model": args.model,
            "prompts": prompts,
            "imgsz": args.imgsz,
            "conf": args.conf,
            "iou": args.iou,
            "max_det": args.max_det,
            "max_batch": args.batch,
            "device": args.device,
            "runtime": args.runtime,
            "precision": args.precision,
            "calibration": args.calibration,
            "clip_pretrained": pretrained,
        }
    }
    if args.segment:
        out["segment"] = {"model": args.sam, "checkpoint": args.sam_checkpoint, "device": args.device}
    return out


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "detect",
        help="open-vocabulary detection (+ masks, tracks) on a video file or stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="video file or stream URL (rtsp://, http://); with several, each writes into OUTPUT/NAME/",
    )
    add_model_args(p)
    p.add_argument("-o", "--output", default="detections", help="output folder (default: ./detections)")
    p.add_argument("--per-frame", action="store_true", help="also write frames.jsonl (every frame's boxes)")
    p.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    p.add_argument("--update-every", type=float, default=5.0, help="seconds between track 'updated' events")
    p.add_argument("--lost-after", type=float, default=1.0, help="seconds unseen before a track ends")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from framesift.cli.scenes import add_ray_options

    add_ray_options(p)
    p.set_defaults(func=cmd_detect)


def detect_config(args: argparse.Namespace, out: Path, source: str | None = None) -> Any:
    """The pipeline config ``framesift detect`` runs over ``source`` (default: the only one)."""
    from framesift.cli.inputs import source_config
    from framesift.config import parse_config

    source = source if source is not None else args.sources[0]
    options = {} if args.max_frames is None else {"max_frames": args.max_frames}
    sinks: list[dict[str, Any]] = [
        {"type": "detections", "path": str(out / "detections.jsonl"), "per": "track"}
    ]
    if args.per_frame:
        sinks.append(
            {"type": "detections", "path": str(out / "frames.jsonl"), "per": "frame", "name": "frames"}
        )
    if not args.no_video:
        sinks.append({"type": "video", "path": str(out / "annotated.mp4"), "masks": bool(args.segment)})
    tracker = {
        "type": "tracker",
        **engine_configs(args),
        "update_every_s": args.update_every,
        "lost_after_s": args.lost_after,
        "crops_dir": str(out / "crops"),
        "per_frame_events": True,
    }
    return parse_config(
        {
            "sources": [source_config(source, id="stream" if "://" in source else None, **options)],
            "analyzers": [tracker],
            "sinks": sinks,
            "stage": {"max_batch": max(1, args.batch)},
            "metrics": {"enabled": False},
        },
        where="detect",
    )


def output_files(args: argparse.Namespace, out: Path) -> list[Path]:
    """The files ``detect`` writes into ``out`` (``crops/`` aside)."""
    names = ["detections.jsonl"]
    if args.per_frame:
        names.append("frames.jsonl")
    if not args.no_video:
        names.append("annotated.mp4")
    return [out / name for name in names]


def check_outputs(args: argparse.Namespace, out: Path) -> None:
    """ConfigError (exit 2), before any model loads, where ``out`` is a file or one of the paths
    ``detect`` writes in it is taken by something of the other kind."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: is a file; give a folder (created if missing)")
    for path in output_files(args, out):
        if path.is_dir():
            raise ConfigError(
                f"-o {out}: {path} is a folder where detect writes a file; remove it or choose another -o"
            )
    crops = out / "crops"
    if crops.exists() and not crops.is_dir():
        raise ConfigError(f"-o {out}: {crops} is a file where detect writes a folder of crops; remove it")


def check_model(args: argparse.Namespace) -> None:
    """ConfigError (exit 2) naming ``--model`` when it is neither a variant letter nor a file the
    detector can load (checked before CLIP and the other models load)."""
    from framesift.engines.models.yolo_world_export import VARIANTS, check_model_file

    if str(args.model) not in VARIANTS:
        check_model_file(args.model, "--model")


def check_video_written(args: argparse.Namespace, folders: dict[Path, int]) -> None:
    """SinkError (exit 1) when a folder whose source gave frames has no annotated video: the video
    sink failed (its warning above says why); the other outputs are written."""
    if args.no_video:
        return
    for out, frames in folders.items():
        video = out / "annotated.mp4"
        if frames and not video.is_file():
            raise SinkError(
                f"{video} was not written (see the video sink's warning above); the other outputs are in {out}",
                sink="video",
            )


def cmd_detect(args: argparse.Namespace) -> int:
    from framesift.analyzers.tracking import TrackingAnalyzer
    from framesift.cli.inputs import check_input
    from framesift.cli.runner import run_pipeline
    from framesift.cli.scenes import check_ray_options
    from framesift.pipeline import Pipeline

    out = Path(args.output)
    for src in args.sources:
        check_input(src)  # before loading models or creating the output folder
    check_ray_options(args)
    check_model(args)
    if args.ray or len(args.sources) > 1:
        return _detect_many(args, out)
    check_outputs(args, out)
    cfg = detect_config(args, out)
    pipeline = Pipeline(cfg)  # loads the models
    t0 = time.perf_counter()
    stopped_by = run_pipeline(pipeline, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    frames = sum(s.frames_staged for s in pipeline.status().sources.values())
    tracks = sum(a.started for a in pipeline.analyzers if isinstance(a, TrackingAnalyzer))
    print(
        f"{frames} frames in {dt:.1f}s ({frames / max(dt, 1e-9):.1f} fps), {tracks} tracks → {out}",
        file=sys.stderr,
    )
    if stopped_by == signal.SIGINT:
        print("framesift: interrupted (drained and flushed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    check_video_written(args, {out: frames})
    return EXIT_OK


def output_folders(sources: list[str], out: Path) -> dict[str, Path]:
    """OUTPUT/NAME per source (the file's stem; ``-2``, ``-3``... where names repeat)."""
    folders: dict[str, Path] = {}
    seen: dict[str, int] = {}
    for src in sources:
        name = Path(src.split("?")[0].rstrip("/")).stem or "stream"
        seen[name] = seen.get(name, 0) + 1
        folders[src] = out / (name if seen[name] == 1 else f"{name}-{seen[name]}")
    return folders


def _detect_many(args: argparse.Namespace, out: Path) -> int:
    """Several sources (each a pipeline into its own folder), or ``--ray`` (each file a shard)."""
    from framesift.cli.runner import raise_failures
    from framesift.cluster.runs import FileRuns

    if len(set(args.sources)) != len(args.sources):
        raise ConfigError("detect: a source is given twice; name each once")
    folders = output_folders(list(args.sources), out)
    for folder in folders.values():
        check_outputs(args, folder)
    job = FileRuns({src: detect_config(args, folders[src], src) for src in args.sources})
    errors: list[FramesiftError] = []
    t0 = time.perf_counter()
    if args.ray:
        from framesift.cluster.ray_exec import print_stats
        from framesift.cluster.runs import run_on_ray

        for src in args.sources:
            if "://" in src:
                raise ConfigError(
                    f"{src}: --ray runs files (an archive); live sources run with `framesift run`"
                )
        results, stats = run_on_ray(
            job, address=args.ray, manifest_dir=out / ".framesift-ray" / "detect", gpus=args.ray_gpus,
            quiet=args.no_progress,
        )  # fmt: skip
        print_stats(stats)
    else:
        from framesift.analyzers.detection import reused_engines
        from framesift.cluster.runs import run_shard
        from framesift.cluster.shards import Shard

        results = []
        with reused_engines():  # one detector for all the files, not one per file
            for src in args.sources:
                try:
                    results.append(run_shard(Shard(src, 0, 1, 0, 0, None, None), job, {}))
                except FramesiftError as exc:  # a broken input does not stop the others
                    errors.append(exc)
    dt = time.perf_counter() - t0
    for r in results:
        print(f"{r.path}: {r.frames} frames, {r.tracks} tracks → {folders[r.path]}", file=sys.stderr)
    frames = sum(r.frames for r in results)
    print(f"{frames} frames in {dt:.1f}s ({frames / max(dt, 1e-9):.1f} fps)", file=sys.stderr)
    if not args.ray:  # on a cluster the folders are the nodes'
        check_video_written(args, {folders[r.path]: r.frames for r in results})
    raise_failures(errors)
    return EXIT_OK
