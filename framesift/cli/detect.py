"""``framesift detect VIDEO_OR_URL --prompt forklift --prompt person [--segment] [-o DIR]``.

Decodes with PyAV, detects in batches with YOLO-World (prompts → CLIP text embeddings), optionally
segments every box with SAM, tracks per source with ByteTrack and writes into DIR:
``detections.jsonl`` (one line per track event), ``frames.jsonl`` (with ``--per-frame``),
``annotated.mp4`` (same frame count and timestamps as the input; ``--no-video`` to skip) and
``crops/`` (each track's best-scoring crop).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from framesift.errors import EXIT_OK, ConfigError, DecodeError, SourceError
from framesift.events import TrackEvent
from framesift.frame import Frame
from framesift.progress import Bar, count_frames

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
        choices=["auto", "onnxruntime", "torch"],
        help="detector runtime (auto: PyTorch on CUDA or on CPUs with native bf16, else ONNX Runtime)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="detector precision (auto: fp16 on CUDA, bf16 on AMX/AVX512-BF16 CPUs, else fp32)",
    )
    p.add_argument(
        "--clip-pretrained",
        default="openai",
        help="CLIP ViT-B-32 text weights: open_clip tag, local checkpoint, or 'none' (random; tests only)",
    )
    p.add_argument("--segment", action="store_true", help="add SAM masks to every box")
    p.add_argument("--sam", default="vit_t", help="SAM model: vit_t (MobileSAM), vit_b/l/h, or ONNX folder")
    p.add_argument("--sam-checkpoint", default=None, help="SAM checkpoint (.pt); none = random weights")


def build_models(args: argparse.Namespace) -> tuple[Any, Any]:
    """(YoloWorld, SamSegmenter | None) from the parsed options."""
    from framesift.engines.models.yolo_world import ClipTextEncoder, YoloWorld

    prompts = [p for p in args.prompt]
    if not prompts or any(not p.strip() for p in prompts):
        raise ConfigError("no prompts given: name what to find with --prompt, e.g. --prompt forklift")
    pretrained = None if str(args.clip_pretrained).lower() == "none" else args.clip_pretrained
    detector = YoloWorld(
        args.model,
        prompts=None,
        imgsz=args.imgsz,
        conf=args.conf,
        iou=args.iou,
        max_det=args.max_det,
        max_batch=args.batch,
        device=args.device,
        runtime=args.runtime,
        precision=args.precision,
        text_encoder=ClipTextEncoder("ViT-B-32", pretrained),
    )
    detector.set_prompts(prompts)
    segmenter = None
    if args.segment:
        from framesift.engines.models.sam import SamSegmenter

        segmenter = SamSegmenter(args.sam, checkpoint=args.sam_checkpoint, device=args.device)
    return detector, segmenter


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "detect",
        help="open-vocabulary detection (+ masks, tracks) on a video file or stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="video file or stream URL (rtsp://, http://)")
    add_model_args(p)
    p.add_argument("-o", "--output", default="detections", help="output folder (default: ./detections)")
    p.add_argument("--per-frame", action="store_true", help="also write frames.jsonl (every frame's boxes)")
    p.add_argument("--no-video", action="store_true", help="do not write annotated.mp4")
    p.add_argument("--update-every", type=float, default=5.0, help="seconds between track 'updated' events")
    p.add_argument("--lost-after", type=float, default=1.0, help="seconds unseen before a track ends")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_detect)


def check_source(source: str) -> None:
    """SourceError when ``source`` is neither an existing file nor a URL."""
    if "://" not in source and not Path(source).is_file():
        raise SourceError(
            f"input {source!r} not found: pass an existing video file or a stream URL", source=source
        )


def decode_frames(source: str, source_id: str, max_frames: int | None = None) -> Iterator[Frame]:
    """Frames of ``source`` in presentation order (PyAV), with ``meta['fps']`` set."""
    import av

    options = {"rtsp_transport": "tcp", "timeout": "10000000"} if source.startswith("rtsp") else {}
    if "://" not in source and not Path(source).exists():
        raise SourceError(
            f"input {source!r} not found: pass an existing video file or a stream URL", source=source
        )
    try:
        container = av.open(source, options=options, timeout=15.0)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {source!r}: {exc}", source=source) from exc
    try:
        if not container.streams.video:
            raise DecodeError(f"{source!r} has no video stream", source=source)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 90000)
        fps = stream.average_rate or stream.guessed_rate or 30
        index = 0
        try:
            for vf in container.decode(stream):
                if vf.pts is None:
                    continue
                img = vf.to_ndarray(format="rgb24")
                yield Frame(source_id, index, int(vf.pts), Fraction(tb), time.time(), img, meta={"fps": fps})
                index += 1
                if max_frames is not None and index >= max_frames:
                    return
        except av.FFmpegError as exc:
            raise DecodeError(f"cannot decode {source!r} at frame {index}: {exc}", source=source) from exc
    finally:
        container.close()


def _batches(frames: Iterator[Frame], n: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for f in frames:
        batch.append(f)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_detect(args: argparse.Namespace) -> int:
    from framesift.analyzers.tracking import TrackingAnalyzer
    from framesift.sinks.detections import DetectionsSink
    from framesift.sinks.video import VideoSink

    out = Path(args.output)
    check_source(args.source)  # before loading models or creating the output folder
    detector, segmenter = build_models(args)
    out.mkdir(parents=True, exist_ok=True)
    source_id = Path(args.source).stem if "://" not in args.source else "stream"
    tracker = TrackingAnalyzer(
        update_every_s=args.update_every,
        lost_after_s=args.lost_after,
        crops_dir=out / "crops",
        per_frame_events=True,
    )
    sinks: list[Any] = [DetectionsSink(out / "detections.jsonl", per="track")]
    if args.per_frame:
        sinks.append(DetectionsSink(out / "frames.jsonl", per="frame"))
    if not args.no_video:
        sinks.append(VideoSink(out / "annotated.mp4", masks=segmenter is not None))
    for s in sinks:
        s.open()
    frames = tracks = 0
    total = None if "://" in args.source else count_frames([args.source])
    if args.max_frames is not None:
        total = min(total, args.max_frames) if total is not None else args.max_frames
    bar = Bar(total=total, unit="frame", desc="detect", disable=args.no_progress or None, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        for batch in _batches(decode_frames(args.source, source_id, args.max_frames), max(1, args.batch)):
            dets = detector.detect(batch)
            for frame, det in zip(batch, dets, strict=True):
                if segmenter is not None:
                    segmenter.segment_detections(frame, det)
                for ev in tracker.update(frame, det):
                    tracks += isinstance(ev, TrackEvent) and ev.phase == "started"
                    for s in sinks:
                        s.write(ev)
                frames += 1
            bar.update(len(batch))
        for ev in tracker.on_end(source_id):
            for s in sinks:
                s.write(ev)
    finally:
        bar.close()
        for s in sinks:
            s.close()
    dt = time.perf_counter() - t0
    print(
        f"{frames} frames in {dt:.1f}s ({frames / max(dt, 1e-9):.1f} fps), {tracks} tracks → {out}",
        file=sys.stderr,
    )
    return EXIT_OK
