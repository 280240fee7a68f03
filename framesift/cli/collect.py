"""``framesift collect SOURCE... -o DIR``: keep the frames worth labelling, for a station.

Sources are files, folders of images or live URLs (rtsp://, http(s)://). DIR receives ``store/`` (a frame store:
images + SQLite index) and ``events.jsonl`` (frames kept, source status). Re-running into the same
DIR reloads the collector's memory, so it does not keep again what it already kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from framesift.analyzers.collector import CollectorConfig
from framesift.config.units import parse_budget, parse_duration
from framesift.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "collect",
        help="keep novel / prompt-matching frames from files or cameras into a searchable frame store",
        description="Watch SOURCEs (video files, folders of images, rtsp:// or http(s):// URLs) and keep the frames worth labelling: "
        "those unlike what was kept recently, or matching --prompt, within --budget. Writes DIR/store "
        "(images + SQLite index) and DIR/events.jsonl. Ctrl-C stops a live run cleanly. "
        "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 input unreadable, 130 interrupted.",
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="video file, folder of images (or a glob such as 'shots/*.jpg'), rtsp:// or http(s):// URL",
    )
    p.add_argument(
        "-o", "--out", "--output", default="framesift-collect", metavar="DIR", help="output directory"
    )
    p.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="keep frames matching TEXT")
    p.add_argument("--negative", action="append", default=[], metavar="TEXT", help="negative prompt")
    p.add_argument(
        "--prompt-threshold", type=float, default=None, metavar="P", help="softmax probability (0.5)"
    )
    p.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="N[/UNIT]",
        help="keeps per source: N alone is a total for the run (files: the N frames that best cover "
        "each one); 100/h, 10/m, 500/d are paced rates (live sources)",
    )
    p.add_argument("--min-interval", default="0s", metavar="DUR", help="stream time between keeps, e.g. 2s")
    p.add_argument("--every", default=None, metavar="DUR", help="periodic baseline keep, e.g. 10m")
    p.add_argument(
        "--novelty",
        type=float,
        default=None,
        metavar="X",
        help="novelty threshold (default: 0.35 with the pixel embedder, 0.15 with CLIP)",
    )
    p.add_argument("--cross-camera", action="store_true", help="dedupe across sources (same scene kept once)")
    p.add_argument(
        "--scenes",
        default="pixel",
        choices=["pixel", "transnet", "ensemble", "off"],
        help="shot detector the collector reads (pixel: weight-free; transnet/ensemble: TransNetV2, "
        "needs the transnet extra); off: judge every frame on its own",
    )
    p.add_argument(
        "--model", default="auto", help="embedder: auto (CLIP if weights, else pixel), pixel, ViT-B-32…"
    )
    p.add_argument(
        "--clip-pretrained",
        "--pretrained",
        dest="pretrained",
        default=None,
        help="open_clip pretrained tag of --model (e.g. openai); --pretrained is the same flag",
    )
    p.add_argument("--checkpoint", default=None, help="local CLIP checkpoint for --model")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "int8"],
        help="CLIP's precision (default auto); int8 is opt-in: quantised, and refused where its parity "
        "gate against fp32 fails (docs/engines.md)",
    )
    p.add_argument(
        "--calibration", default=None, metavar="VIDEO", help="--precision int8: frames of VIDEO gate it"
    )
    p.add_argument("--format", default="jpeg", choices=["jpeg", "png", "webp"], help="image format")
    p.add_argument("--quality", type=int, default=90, help="JPEG/WebP quality 1-100")
    p.add_argument("--max-size", default=None, metavar="SIZE", help="store retention by size, e.g. 20GB")
    p.add_argument("--max-age", default=None, metavar="DUR", help="store retention by age, e.g. 30d")
    p.add_argument("--fps", type=float, default=None, help="subsample sources to this rate (target_fps)")
    p.add_argument("--realtime", action="store_true", help="pace files at their frame rate (replay as live)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar / status lines")
    p.add_argument("--metrics-port", type=int, default=None, metavar="N", help="serve /metrics on this port")
    from framesift.cli.scenes import add_ray_options

    add_ray_options(p)
    p.set_defaults(func=cmd_collect)


def collector_config(args: argparse.Namespace, store_dir: Path) -> CollectorConfig:
    budgets: dict[str, int] = {}
    for b in args.budget:
        if b.strip().isdigit():
            budgets["budget"] = int(b)
            continue
        key, n = parse_budget(b)
        budgets[key] = n
    opts: dict[str, Any] = {
        "prompts": args.prompt,
        "negatives": args.negative,
        "min_interval_s": parse_duration(args.min_interval),
        "every_s": None if args.every is None else parse_duration(args.every),
        "cross_source": args.cross_camera,
        "shots": args.scenes != "off",
        "seed_from": str(store_dir),
        **budgets,
    }
    if args.novelty is not None:
        opts["novelty_threshold"] = args.novelty
    if args.prompt_threshold is not None:
        if not args.prompt:
            raise ConfigError(
                "--prompt-threshold applies with --prompt TEXT (it is the bar a prompt match clears)"
            )
        opts["prompt_threshold"] = args.prompt_threshold
    from framesift.config import validate_model

    flags = {
        "budget": "--budget",
        **{k: "--budget N/m|N/h|N/d" for k in ("max_per_minute", "max_per_hour", "max_per_day")},
        "novelty_threshold": "--novelty",
        "prompt_threshold": "--prompt-threshold",
        "min_interval_s": "--min-interval",
        "every_s": "--every",
    }
    return validate_model(CollectorConfig, opts, where="collect", flags=flags)


def cmd_collect(args: argparse.Namespace) -> int:
    from framesift.analyzers.collector import Collector
    from framesift.cli.detect import check_calibration
    from framesift.cli.runner import run_pipeline
    from framesift.cli.scenes import check_ray_options
    from framesift.config import parse_config, validate_model
    from framesift.config.engines import EngineConfig
    from framesift.engines.factory import build_embedder
    from framesift.pipeline import Pipeline
    from framesift.sinks.frame_store import FrameStoreSink, retention_bytes
    from framesift.sinks.jsonl import JsonlSink
    from framesift.store.index import FrameStore

    check_ray_options(args)
    check_calibration(args)
    max_bytes = None if args.max_size is None else retention_bytes(args.max_size, "--max-size")
    out = Path(args.out)
    store_dir = out / "store"
    if not 1 <= args.quality <= 100:
        raise ConfigError(f"--quality: {args.quality} is not in 1..100")
    ccfg = collector_config(args, store_dir)
    from framesift.cli.inputs import analysis_frames, source_config

    learned = args.scenes in ("transnet", "ensemble")
    shot_options = {"shot_frames": True} if learned else {}
    data: dict[str, Any] = {
        "sources": [
            source_config(s, fps=args.fps, realtime=args.realtime, **shot_options) for s in args.sources
        ],
        "metrics": {"enabled": args.metrics_port is not None, "port": args.metrics_port or 0},
    }
    flags = {f"sources.{i}.target_fps": "--fps" for i in range(len(args.sources))}
    cfg = parse_config(data, where="collect", flags=flags)
    engine_opts = {"model": args.model, "pretrained": args.pretrained, "checkpoint": args.checkpoint}
    engine_opts |= {"precision": args.precision, "calibration": args.calibration}
    engine_cfg = validate_model(
        EngineConfig, engine_opts, where="collect: engine", flags={k: f"--{k}" for k in engine_opts}
    )
    embedder = build_embedder(engine_cfg)
    small = [analysis_frames(s, embedder.name) for s in data["sources"]]
    if small != data["sources"]:  # files analysed on small frames (checked above as given)
        cfg = parse_config({**data, "sources": small}, where="collect", flags=flags)
    collector = Collector.from_config(ccfg, embedder)
    store = FrameStore(
        store_dir,
        format=args.format,
        quality=args.quality,
        max_bytes=max_bytes,
        max_age_s=None if args.max_age is None else parse_duration(args.max_age),
    )
    engine_meta = engine_cfg.model_dump(exclude_none=True)
    engine_meta["model"] = "pixel" if embedder.name == "pixel" else engine_meta["model"]
    frame_sink = FrameStoreSink(store, engine=engine_meta)
    events = JsonlSink(out / "events.jsonl", name="events")
    if args.ray:
        if learned:
            raise ConfigError(f"--scenes {args.scenes} does not run on a Ray cluster yet: use --scenes pixel")
        return _collect_on_ray(args, ccfg, engine_opts, collector, [frame_sink, events], store, out)
    analyzers: list[Any] = [collector]
    if learned:
        from framesift.analyzers.scene_change import SceneChangeAnalyzer, SceneChangeConfig

        scenes = validate_model(SceneChangeConfig, {"mode": args.scenes}, where="collect --scenes")
        analyzers.insert(0, SceneChangeAnalyzer.from_config(scenes, embedder))
    pipeline = Pipeline(cfg, embedder=embedder, analyzers=analyzers, sinks=[frame_sink, events])
    try:
        stopped_by = run_pipeline(pipeline, progress=not args.no_progress)
    finally:
        print(summary(collector, frame_sink, store_dir), file=sys.stderr)
    if stopped_by == signal.SIGINT:
        print("framesift: interrupted (drained and flushed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _collect_on_ray(
    args: argparse.Namespace, ccfg: CollectorConfig, engine: dict[str, Any], collector: Any, sinks: list[Any],
    store: Any, out: Path,
) -> int:  # fmt: skip
    from framesift.cli.inputs import check_input, is_image_set
    from framesift.cluster.collect import run_on_ray
    from framesift.cluster.ray_exec import print_stats

    for src in args.sources:
        if "://" in src:
            raise ConfigError(
                f"{src}: --ray collects from files (an archive); live sources run with `framesift run`"
            )
        if is_image_set(src):
            raise ConfigError(
                f"{src}: --ray collects from video files; collect a folder of images without --ray"
            )
        check_input(src)
    if args.realtime or args.fps is not None or args.metrics_port is not None:
        raise ConfigError("--ray: --realtime, --fps and --metrics-port are for a local run; drop them")
    tally, stats = run_on_ray(
        [str(s) for s in args.sources], ccfg, engine, collector, sinks, store,
        address=args.ray, manifest_dir=out / ".framesift-ray" / "collect",
        shard_seconds=args.shard_seconds, gpus=args.ray_gpus, quiet=args.no_progress,
    )  # fmt: skip
    print_stats(stats)
    present = f" ({tally['present']} already in the store)" if tally["present"] else ""
    done = tally["files_done"]
    skipped = f"; {done} file{'s' if done != 1 else ''} already collected by an earlier run" if done else ""
    print(
        f"framesift collect: kept {tally['kept']}{present}{skipped}; stored in {out / 'store'}",
        file=sys.stderr,
    )
    return EXIT_OK


def summary(collector: Any, sink: Any, store_dir: Path) -> str:
    kept = {k.split(":", 1)[1]: v for k, v in collector.counts.items() if k.startswith("kept:")}
    skipped = {k.split(":", 1)[1]: v for k, v in collector.counts.items() if k.startswith("skipped:")}
    head = f"kept {sum(kept.values())}"
    if kept:
        head += " (" + ", ".join(f"{k} {v}" for k, v in sorted(kept.items())) + ")"
    parts = [head]
    if skipped:
        parts.append("skipped " + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    gated = {k.split(":", 1)[1]: v for k, v in collector.counts.items() if k.startswith("gated:")}
    if gated:
        parts.append("candidates gated " + ", ".join(f"{k} {v}" for k, v in sorted(gated.items())))
    if collector.counts["short_of_budget"]:
        parts.append(
            f"{collector.counts['short_of_budget']} short of the total budget (too few clean, distinct frames)"
        )
    parts.append(f"stored {sink.counts['written']} in {store_dir}")
    line = "framesift collect: " + "; ".join(parts)
    failed = sink.counts["disk_full"] + sink.counts["failed"]
    if failed:
        line += f"; {failed} NOT stored ({sink.counts['disk_full']} disk full): {sink.last_error}"
    return line
