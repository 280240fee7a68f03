"""Pipeline overhead: frames/s through the Pipeline (no-op stage) ÷ a bare PyAV decode loop.

Both decode the same generated 1080p H.264 clip with threaded decoding and the same rgb24
conversion, in alternating runs of one process. Also: 4 copies of the file at once (aggregate
frames/s) ÷ one file through the pipeline. Prints a table and ends with one ``RESULT`` line.

    python bench/pipeline_overhead.py [--rounds 9] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av

from framesift.cli.runner import tune_malloc
from framesift.config import parse_config
from framesift.pipeline import Pipeline
from framesift.samples import write_clip

W, H, FPS = 1920, 1080, 25


def clip_path(seconds: int) -> Path:
    """The 1080p clip, generated once and cached in the temp dir."""
    cache = Path(tempfile.gettempdir()) / "framesift-bench"
    cache.mkdir(exist_ok=True)
    path = cache / f"overhead-{W}x{H}-{seconds}s.mp4"
    if not path.exists():
        tmp = path.with_suffix(".tmp.mp4")
        t0 = time.perf_counter()
        write_clip(tmp, segments=(FPS * seconds,), fps=FPS, width=W, height=H, gop=FPS * 2)
        tmp.replace(path)
        print(f"generated {path} in {time.perf_counter() - t0:.1f}s")
    return path


def bare(path: Path) -> tuple[int, float]:
    """A bare PyAV decode loop: threaded decoding, rgb24 ndarray per frame."""
    t0 = time.perf_counter()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for packet in c.demux(s):
            for f in packet.decode():
                f.to_ndarray(format="rgb24")
                n += 1
    return n, time.perf_counter() - t0


def pipeline(paths: list[Path]) -> tuple[int, float]:
    cfg = parse_config(
        {"sources": [{"type": "file", "path": str(p)} for p in paths], "metrics": {"enabled": False}}
    )
    p = Pipeline(cfg)
    t0 = time.perf_counter()
    p.start()
    p.join()
    dt = time.perf_counter() - t0
    p.stop()
    return sum(s.frames_staged for s in p.status().sources.values()), dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9, help="alternating rounds (the median ratio is reported)")
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    path = clip_path(args.seconds)
    tuned = tune_malloc()  # the pipeline does this at start; apply it to both sides from the outset
    bare(path)  # warm the page cache
    rows: dict[str, list[float]] = {"bare PyAV loop": [], "pipeline, 1 file": [], "pipeline, 4 files": []}
    cpu: dict[str, list[float]] = {k: [] for k in rows}
    for _ in range(args.rounds):
        for name, fn in (
            ("bare PyAV loop", lambda: bare(path)),
            ("pipeline, 1 file", lambda: pipeline([path])),
            ("pipeline, 4 files", lambda: pipeline([path] * 4)),
        ):
            c0 = time.process_time()
            n, dt = fn()
            cpu[name].append((time.process_time() - c0) * 1000 / n)
            rows[name].append(n / dt)
    print(f"\nclip: {W}x{H} H.264, {args.seconds} s at {FPS} fps; {args.rounds} alternating rounds; frames/s")
    print(f"malloc tuning (framesift.cli.runner.tune_malloc) active for both: {tuned}")
    print(f"{'run':<20} {'median':>9} {'min':>9} {'max':>9} {'CPU ms/frame':>13}")
    for name, vals in rows.items():
        med_cpu = statistics.median(cpu[name])
        print(f"{name:<20} {statistics.median(vals):9.1f} {min(vals):9.1f} {max(vals):9.1f} {med_cpu:13.2f}")
    ratio_pipe = statistics.median(
        p / b for p, b in zip(rows["pipeline, 1 file"], rows["bare PyAV loop"], strict=False)
    )
    ratio_four = statistics.median(
        f / o for f, o in zip(rows["pipeline, 4 files"], rows["pipeline, 1 file"], strict=False)
    )
    cpu_ratio = statistics.median(cpu["bare PyAV loop"]) / statistics.median(cpu["pipeline, 1 file"])
    print("ratios are medians of per-round ratios; cpu = bare CPU per frame ÷ pipeline CPU per frame")
    print(
        f"RESULT pipeline_vs_bare={ratio_pipe:.3f} four_files_vs_one={ratio_four:.3f} "
        f"pipeline_cpu_vs_bare={cpu_ratio:.3f}"
    )


if __name__ == "__main__":
    main()
