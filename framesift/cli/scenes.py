"""``framesift scenes VIDEO... [-o DIR]``: scene lists, EDL, thumbnails and an HTML report per video."""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing as mp
import os
import queue
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.errors import EXIT_OK, ConfigError, SourceError
from framesift.progress import Bar, count_frames

log = logging.getLogger("framesift.scenes")

_tick: Any = None  # called with a frame count: bar.update here, a queue's put_nowait in workers


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
        "--labels", nargs="+", metavar="PROMPT", help="label each scene by its closest prompt (CLIP)"
    )
    p.add_argument(
        "--mode",
        choices=["pixel", "hybrid", "clip"],
        default="pixel",
        help="pixel: weight-free, every frame; hybrid: pixel + CLIP on candidates; clip: CLIP on every frame",
    )
    p.add_argument("--checkpoint", metavar="PATH", help="local open_clip weights for hybrid/clip/labels")
    p.add_argument("--model", default="ViT-B-32", help="open_clip architecture of --checkpoint")
    p.add_argument("--min-scene-len", type=int, default=None, metavar="FRAMES")
    p.add_argument("--threshold", type=float, default=None, metavar="D", help="absolute floor for a cut")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    p.add_argument("--no-thumbnails", action="store_true")
    p.add_argument("-j", "--jobs", type=int, default=0, help="videos processed at once (default: cores)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> SceneChangeConfig:
    opts: dict[str, Any] = {"mode": args.mode}
    if args.labels:
        opts["labels"] = list(args.labels)
    if args.min_scene_len is not None:
        opts["min_scene_len"] = args.min_scene_len
    if args.threshold is not None:
        opts["min_score"] = args.threshold
    from framesift.config import validate_model

    return validate_model(SceneChangeConfig, opts, where="scenes")


def _embedder(mode: str, labels: bool, checkpoint: str | None, model: str) -> Any:
    if mode == "pixel" and not labels:
        return None
    if not checkpoint:
        raise ConfigError(
            f"--mode {mode}{' with --labels' if labels else ''} needs CLIP weights: pass --checkpoint "
            "/path/to/open_clip_weights.pt (no weights ship with framesift), or use --mode pixel"
        )
    if not Path(checkpoint).is_file():
        raise ConfigError(f"--checkpoint {checkpoint}: no such file")
    from framesift.config.engines import EngineConfig
    from framesift.engines.factory import build_embedder

    return build_embedder(EngineConfig(model=model, checkpoint=checkpoint))


def process_one(
    video: str,
    out_dir: str,
    cfg: SceneChangeConfig,
    checkpoint: str | None,
    model: str,
    opts: dict[str, bool],
) -> tuple[str, int, int, str]:
    """Detect and write every output for one video; returns (video, scenes, frames, html path)."""
    from framesift.scenes import detect_scenes, write_all

    embedder = _embedder(cfg.mode, bool(cfg.labels), checkpoint, model)

    def tick(n: int) -> None:
        if _tick is not None:
            with contextlib.suppress(queue.Full):
                _tick(n)

    try:
        sl = detect_scenes(
            video, config=cfg, embedder=embedder, on_progress=tick, thumbnails=not opts["no_thumbnails"]
        )
        paths = write_all(
            sl,
            Path(out_dir),
            html_report=not opts["no_html"],
            thumbnails=not opts["no_thumbnails"],
            split=opts["split"],
        )
    finally:
        if embedder is not None:
            embedder.close()
    return video, len(sl.scenes), sl.frames, str(paths.get("html", paths["csv"]))


def _init_worker(q: Any) -> None:
    global _tick
    _tick = q.put_nowait


def run(args: argparse.Namespace) -> int:
    videos = [str(v) for v in args.videos]
    for v in videos:  # fail fast, before any work, on inputs that cannot be read
        p = Path(v)
        if not p.is_file():
            raise SourceError(f"{v}: no such file (check the path)", source=v)
        if not os.access(p, os.R_OK):
            raise SourceError(f"{v}: not readable (check its permissions)", source=v)
    cfg = _config(args)
    if (cfg.mode != "pixel" or cfg.labels) and not args.checkpoint:
        _embedder(cfg.mode, bool(cfg.labels), None, args.model)  # raises the ConfigError naming the fix
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    opts = {"split": args.split, "no_html": args.no_html, "no_thumbnails": args.no_thumbnails}
    jobs = args.jobs or os.cpu_count() or 1
    jobs = max(1, min(jobs, len(videos)))
    bar = Bar(  # no monitor thread: the bar is updated from this thread only
        total=count_frames(videos),
        unit="frame",
        desc="scenes",
        disable=args.no_progress or None,
        file=sys.stderr,
    )
    results: list[tuple[str, int, int, str]] = []
    try:
        if jobs == 1:
            global _tick
            _tick = bar.update
            try:
                for v in videos:
                    results.append(process_one(v, str(out), cfg, args.checkpoint, args.model, opts))
            finally:
                _tick = None
        else:
            results = _run_pool(videos, out, cfg, args, opts, jobs, bar)
    finally:
        bar.close()
    for video, n_scenes, n_frames, report in results:
        print(f"{video}: {n_scenes} scenes in {n_frames} frames → {report}")
    return EXIT_OK


def _run_pool(
    videos: list[str],
    out: Path,
    cfg: SceneChangeConfig,
    args: argparse.Namespace,
    opts: dict[str, bool],
    jobs: int,
    bar: Any,
) -> list[tuple[str, int, int, str]]:
    # fork: workers start at once and no semaphore tracker process outlives the pool (spawn starts one).
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    q = ctx.Queue(maxsize=10_000)
    results: list[tuple[str, int, int, str]] = []
    try:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(q,)
        ) as pool:
            futs: list[Future[tuple[str, int, int, str]]] = [
                pool.submit(process_one, v, str(out), cfg, args.checkpoint, args.model, opts) for v in videos
            ]
            pending = set(futs)
            while pending:
                with contextlib.suppress(queue.Empty):
                    bar.update(q.get(timeout=0.2))
                for f in [f for f in pending if f.done()]:
                    pending.discard(f)
                    exc = f.exception()
                    if exc is not None:
                        for other in pending:
                            other.cancel()
                        raise exc
            results = [f.result() for f in futs]
        while True:
            try:
                bar.update(q.get_nowait())
            except (queue.Empty, OSError, ValueError):
                break
    finally:
        q.close()
        q.join_thread()
    return results
