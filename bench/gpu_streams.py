"""How many 1080p30 H.264 streams one machine sustains in real time: decode, CLIP batching, end to end.

Streams are one file replayed at its frame rate (``realtime: true, loop: true``) by N sources at once,
each with framesift's real capture thread (:class:`~framesift.stream.capture.CaptureWorker`), a
``drop_oldest`` ring buffer and the batching stage (:class:`~framesift.engines.batcher.Batcher`):

1. decode only — the batcher drains every buffer; NVDEC (``pyav-cuda``/``nvcodec``, frames kept on
   the GPU) vs CPU decode (``pyav``);
2. CLIP ViT-B-32 images/s in the batching stage (fp16 on CUDA; fp32 on CPU, labelled so), random
   weights (speed does not depend on weight values), through ``framesift.engines.factory.build_embedder``;
3. end to end — decode → batch → CLIP → scene change (cosine distance between consecutive frames of a
   source) at 5 fps sampling per stream and at the full frame rate, with p99 latency (due time of the
   frame at its replay rate → its embedding done).

A run with N streams is *sustained* when, over the measured window, no stream ends more than
``--max-behind`` seconds behind its real-time schedule and at most 1 % of frames were dropped
(buffer full or stale). N doubles until a run fails, then the largest sustained N is reported.

    python bench/gpu_streams.py --quick            # CPU: CPU decode only, few streams, short runs
    python bench/gpu_streams.py                     # GPU: the full ramp (up to --max-streams)

Ends with ``RESULT ...`` (stream counts, their NVDEC/CPU and 5fps/full ratios, p99 latency, images/s).
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framesift.config.sources import BufferConfig
from framesift.engines.batcher import Batcher
from framesift.frame import Frame
from framesift.gpu import probe_gpu
from framesift.stream.capture import CaptureWorker
from framesift.stream.factory import build_source
from framesift.stream.ringbuffer import RingBuffer
from framesift.stream.sources.file import FileSourceConfig

SKIPPED: list[str] = []


def skip(what: str, why: str) -> None:
    SKIPPED.append(f"{what}: {why}")
    print(f"  skipped {what}: {why}")


# -- input ----------------------------------------------------------------------------------------


def make_input(workdir: Path, width: int, height: int, fps: int, seconds: float) -> Path:
    """A camera-like H.264 clip (moving test pattern + temporal noise, ~6 Mbit/s at 1080p, no
    B-frames, 1 s GOP). Falls back to framesift's own generator where the ffmpeg CLI is missing."""
    path = workdir / f"input_{width}x{height}_{fps}.mp4"
    if shutil.which("ffmpeg"):
        rate = max(1, int(6_000_000 * width * height / (1920 * 1080)))
        cmd = [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size={width}x{height}:rate={fps}",
            "-vf", "noise=alls=12:allf=t", "-t", f"{seconds:g}",
            "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-b:v", str(rate), "-maxrate", str(rate), "-bufsize", str(rate), "-g", str(fps), "-bf", "0",
            str(path),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, timeout=600)
    else:
        from framesift.samples import write_clip

        n = int(fps * seconds)
        write_clip(path, segments=(n // 2, n - n // 2), fps=fps, width=width, height=height, gop=fps)
    return path


# -- running N streams ----------------------------------------------------------------------------


@dataclass
class Run:
    decoder: str
    streams: int
    seconds: float
    frames: int = 0
    drops: int = 0
    behind_s: float = 0.0  # worst stream: how far its last frame's due time lags the end of the window
    latencies: list[float] = field(default_factory=list)
    scene_changes: int = 0
    error: str = ""

    def sustained(self, max_behind: float) -> bool:
        return (
            not self.error
            and self.frames > 0
            and self.behind_s <= max_behind
            and self.drops <= 0.01 * (self.frames + self.drops)
        )

    @property
    def fps(self) -> float:
        return self.frames / self.seconds

    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies, 99) * 1000) if self.latencies else math.nan


class _Anchor:
    """Per source: wall time of its first frame and that frame's media time → each frame's due time."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[float, float]] = {}
        self.last_due: dict[str, float] = {}

    def due(self, f: Frame) -> float:
        t = float(f.time)
        w0, t0 = self.first.setdefault(f.source_id, (f.wallclock, t))
        d = w0 + (t - t0)
        self.last_due[f.source_id] = d
        return d


def run_streams(
    path: Path,
    n: int,
    decoder: str,
    seconds: float,
    *,
    target_fps: float | None = None,
    height: int | None = None,
    gpu_frames: bool = False,
    embedder: Any = None,
    max_batch: int = 64,
    warmup_s: float = 1.0,
) -> Run:
    """Replay ``path`` as ``n`` live streams for ``warmup_s + seconds``; measure the last ``seconds``."""
    run = Run(decoder, n, seconds)
    batcher = Batcher(max_batch=max_batch, max_wait_ms=20, stale_after_ms=2000)
    workers: list[CaptureWorker] = []
    buffers: list[RingBuffer[Frame]] = []
    for i in range(n):
        cfg = FileSourceConfig(
            path=str(path),
            id=f"s{i}",
            decoder=decoder,
            realtime=True,
            loop=True,
            target_fps=target_fps,
            height=height,
            buffer=BufferConfig(capacity=8, on_full="drop_oldest"),
        )
        src = build_source(cfg, gpu_frames=gpu_frames)
        buf: RingBuffer[Frame] = RingBuffer(8, "drop_oldest", name=cfg.id or "", waker=batcher.waker)
        batcher.add_source(src.id, buf, live=True)
        workers.append(CaptureWorker(src, buf, on_status=lambda s: None))
        buffers.append(buf)
    stop = threading.Event()
    anchor = _Anchor()
    prev: dict[str, np.ndarray] = {}
    for w in workers:
        w.start()
    measure_from = time.time() + warmup_s
    end_wall = measure_from + seconds
    timer = threading.Timer(warmup_s + seconds, stop.set)
    timer.start()
    drops_at_start = 0
    measuring = False
    try:
        while True:
            batch = batcher.next_batch(stop)
            if batch is None:
                break
            dues = [anchor.due(f) for f in batch]
            if embedder is not None:
                emb = embedder.embed_images(batch)
                for f, e in zip(batch, emb, strict=True):
                    p = prev.get(f.source_id)
                    if p is not None and 1.0 - float(np.dot(p, e)) > 0.25:
                        run.scene_changes += 1
                    prev[f.source_id] = e
            done = time.time()
            if not measuring and done >= measure_from:
                measuring = True
                drops_at_start = sum(sum(b.drops.values()) for b in buffers)
            if measuring:
                run.frames += len(batch)
                run.latencies.extend(done - d for d in dues)
    except Exception as exc:  # a decoder or engine failure is a result, not a crash of the bench
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        timer.cancel()
        stop.set()
        for w in workers:
            w.stop()
        for w in workers:
            w.join(10)
    failed = [w.error for w in workers if w.error is not None]
    if failed and not run.error:
        run.error = str(failed[0])
    run.drops = sum(sum(b.drops.values()) for b in buffers) - drops_at_start
    run.behind_s = max((end_wall - d for d in anchor.last_due.values()), default=math.inf)
    run.behind_s = max(0.0, run.behind_s)
    return run


def ramp(label: str, counts: list[int], max_behind: float, fn: Any) -> tuple[int, Run | None, list[Run]]:
    """Run ``fn(n)`` for growing ``n`` until one is not sustained; (largest sustained n, its run, all)."""
    best, best_run, runs = 0, None, []
    for n in counts:
        r = fn(n)
        runs.append(r)
        ok = r.sustained(max_behind)
        print(
            f"  {label:<22} {n:>4} streams  {r.fps:8.1f} frames/s  behind {r.behind_s:5.2f} s  "
            f"drops {r.drops:>5}  p99 {r.p99_ms():8.1f} ms  {'ok' if ok else 'NOT sustained'}"
            + (f"  ({r.error})" if r.error else "")
        )
        if not ok:
            break
        best, best_run = n, r
    return best, best_run, runs


# -- CLIP -------------------------------------------------------------------------------------------


def build_clip(device: str, precision: str, max_batch: int) -> Any:
    try:
        from framesift.engines.factory import build_embedder
    except ImportError as exc:
        skip("CLIP", f"framesift.engines.factory.build_embedder is not available ({exc})")
        return None
    from framesift.config.engines import EngineConfig

    cfg = EngineConfig(
        model="ViT-B-32", runtime="torch", device=device, precision=precision, max_batch=max_batch
    )
    logging.getLogger("framesift").setLevel(logging.WARNING)
    return build_embedder(cfg)


def clip_images_per_s(embedder: Any, images: list[Any], repeats: int) -> float:
    embedder.embed_images(images)  # warm-up (allocations, kernels, graphs)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        embedder.embed_images(images)
        _sync()
        best = min(best, time.perf_counter() - t0)
    return len(images) / best


def _sync() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


# -- main -------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="reduced run (default where there is no GPU)")
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds per run")
    ap.add_argument("--max-streams", type=int, default=None)
    ap.add_argument(
        "--counts", default=None, help="stream counts to try, e.g. 16,64,100,128 (caps the run length)"
    )
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=None, help="CLIP batch (default 256 GPU, 16 CPU)")
    ap.add_argument("--max-behind", type=float, default=1.0, help="seconds behind schedule still 'real time'")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    gpu = probe_gpu()
    quick = args.quick or not gpu.cuda
    seconds = args.seconds or (3.0 if quick else 10.0)
    max_streams = args.max_streams or (4 if quick else 256)
    ladder = (
        [int(c) for c in args.counts.split(",")]
        if args.counts
        else [1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, 192, 256]
    )
    counts = [n for n in ladder if n <= max_streams]
    device = f"cuda ({gpu.device_name})" if gpu.cuda else "cpu"
    print(
        f"# gpu_streams: device {device}; {args.width}x{args.height}@{args.fps} H.264; {seconds:g} s per run"
    )
    if quick:
        print(f"# reduced run ({'--quick' if args.quick else 'no GPU: ' + gpu.reason})")
    results: dict[str, str] = {"device": "cuda" if gpu.cuda else "cpu"}
    with tempfile.TemporaryDirectory(prefix="fs-gpu-bench-") as tmp:
        clip = make_input(Path(tmp), args.width, args.height, args.fps, 2.0 if quick else 10.0)

        # 1. decode only
        print("\n## 1. decode only: concurrent streams in real time")
        cpu_n, _, _ = ramp(
            "cpu decode (pyav)", counts, args.max_behind, lambda n: run_streams(clip, n, "pyav", seconds)
        )
        results["cpu_decode_streams"] = str(cpu_n)
        gpu_decoders = [d for d, ok in (("pyav-cuda", gpu.pyav_cuda), ("nvcodec", gpu.nvcodec)) if ok]
        if not gpu.cuda:
            skip("NVDEC decode", gpu.reason)
        elif not gpu_decoders:
            skip("NVDEC decode", f"{gpu.pyav_cuda_reason}; {gpu.nvcodec_reason}")
        for dec in gpu_decoders:
            n_gpu, _, _ = ramp(
                f"nvdec ({dec})",
                counts,
                args.max_behind,
                lambda n, dec=dec: run_streams(clip, n, dec, seconds, gpu_frames=True),
            )
            results[f"nvdec_{dec.replace('-', '_')}_streams"] = str(n_gpu)
            if cpu_n:
                results[f"nvdec_{dec.replace('-', '_')}_vs_cpu"] = f"{n_gpu / cpu_n:.2f}"

        # 2. CLIP in the batching stage
        print("\n## 2. CLIP ViT-B-32 images/s in the batching stage")
        precision = "fp16" if gpu.cuda else "fp32"
        batch = args.batch or (256 if gpu.cuda else 16)
        if not gpu.cuda:
            print("  (fp16 needs CUDA: measuring fp32 on the CPU instead, a small batch)")
        embedder = build_clip("cuda" if gpu.cuda else "cpu", precision, batch)
        gpu_frames = False
        if embedder is not None:
            import av

            with av.open(str(clip)) as c:
                f0 = next(c.decode(video=0)).to_ndarray(format="rgb24", height=224, width=398)
            images: list[Any] = [f0] * batch
            ips = clip_images_per_s(embedder, images, 2 if quick else 5)
            print(f"  clip {precision:<5} batch {batch:>4}: {ips:10.1f} images/s (host frames 398x224)")
            results[f"clip_{precision}_images_per_s"] = f"{ips:.1f}"
            if gpu.cuda:
                import torch

                try:
                    cuda_imgs = [torch.from_numpy(f0).cuda()] * batch
                    ips_gpu = clip_images_per_s(embedder, cuda_imgs, 5)
                    gpu_frames = True
                    print(f"  clip {precision:<5} batch {batch:>4}: {ips_gpu:10.1f} images/s (CUDA frames)")
                    results[f"clip_{precision}_gpu_frames_images_per_s"] = f"{ips_gpu:.1f}"
                except Exception as exc:
                    skip("CLIP on CUDA frames", f"the embedder does not take CUDA tensors yet ({exc})")

        # 3. end to end
        print("\n## 3. end to end: decode -> batch -> CLIP -> scene change")
        if embedder is None:
            skip("end to end", "no CLIP embedder")
        else:
            dec = next(iter(gpu_decoders), "pyav")
            e2e_counts = counts if gpu.cuda else [1, 2]
            full_counts = counts if gpu.cuda else [1]
            n5, r5, runs5 = ramp(
                f"{dec} @ 5 fps",
                e2e_counts,
                args.max_behind,
                lambda n: run_streams(
                    clip, n, dec, seconds, target_fps=5, height=224, gpu_frames=gpu_frames,
                    embedder=embedder, max_batch=batch,
                ),
            )  # fmt: skip
            nf, rf, runsf = ramp(
                f"{dec} @ full rate",
                full_counts,
                args.max_behind,
                lambda n: run_streams(
                    clip, n, dec, seconds, height=224, gpu_frames=gpu_frames, embedder=embedder,
                    max_batch=batch,
                ),
            )  # fmt: skip
            results["e2e_5fps_streams"] = str(n5)
            results["e2e_full_streams"] = str(nf)
            results["e2e_5fps_p99_ms"] = f"{r5.p99_ms():.0f}" if r5 else "nan"
            results["e2e_full_p99_ms"] = f"{rf.p99_ms():.0f}" if rf else "nan"
            if nf:
                results["e2e_5fps_vs_full"] = f"{n5 / nf:.2f}"
            # p99 of one stream, sustained or not: comparable from machine to machine
            results["e2e_1stream_5fps_p99_ms"] = f"{runs5[0].p99_ms():.0f}"
            results["e2e_1stream_full_p99_ms"] = f"{runsf[0].p99_ms():.0f}"
            if not gpu.cuda:
                skip(
                    "end-to-end ramp beyond 2 streams (5 fps) / 1 stream (full rate)", "2-core CPU, quick run"
                )
    if SKIPPED:
        print("\nskipped:")
        for s in SKIPPED:
            print(f"  - {s}")
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
