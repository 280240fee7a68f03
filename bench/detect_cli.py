"""``framesift detect`` wall time, this checkout against another one (A/B in one run).

Both run the same command on the same generated clip with the same random-weight YOLO-World
(``--model s --clip-pretrained none``), alternating, each with its own code on ``PYTHONPATH`` and the
same Python; a warm-up run of each comes first (engine export, caches).

    python bench/detect_cli.py --baseline /path/to/other/checkout [--rounds 5] [--frames 48]

Ends with ``RESULT detect_wall_vs_baseline=<this ÷ baseline, median of per-round ratios>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from framesift.samples import write_clip

HERE = Path(__file__).resolve().parent.parent


def run(checkout: Path, clip: Path, out: Path, extra: list[str]) -> float:
    argv = [sys.executable, "-m", "framesift", "detect", str(clip), "--model", "s", "--clip-pretrained", "none",
            "--prompt", "person", "--prompt", "forklift", "--no-progress", "-o", str(out), *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=3600)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{checkout}: detect failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, type=Path, help="the other checkout (e.g. a git worktree)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more detect options for both")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="framesift-bench-detect-") as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", segments=(args.frames // 2, args.frames - args.frames // 2),
                          width=640, height=360).path  # fmt: skip
        sides = {"this": HERE, "baseline": args.baseline.resolve()}
        for name, checkout in sides.items():  # warm-up: exports, caches, page cache
            run(checkout, clip, Path(tmp) / f"warm-{name}", args.extra)
        times: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            order = list(sides.items()) if r % 2 == 0 else list(reversed(sides.items()))
            for name, checkout in order:
                times[name].append(run(checkout, clip, Path(tmp) / f"{name}-{r}", args.extra))
    print(f"framesift detect on a {args.frames}-frame 640x360 clip, {args.rounds} alternating rounds")
    for name, vals in times.items():
        print(
            f"  {name:<9} {sides[name]}: median {statistics.median(vals):.2f} s (min {min(vals):.2f}, max {max(vals):.2f})"
        )
    ratio = statistics.median(a / b for a, b in zip(times["this"], times["baseline"], strict=True))
    print(f"RESULT detect_wall_vs_baseline={ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
