"""An archive on Ray against the same archive locally, same machine, one run each, process start
and (for Ray) the start-up of a local cluster and its actors included.

    python bench/ray_archive.py [--workdir DIR] [--copies N] [--generated N]

The archive: the Big Buck Bunny trailer (1280x720, 55 s) under ``--copies`` names (12) and OpenCV's
vtest.avi where they are available, plus ``--generated`` 640x360 clips with known transitions (6),
at least 8 clips in all. The Ray run uses ``--shard-seconds`` (600, the default: files this short are
one shard each; a smaller value also cuts the trailer, at the cost of each shard's warm-up). Both runs are ``framesift scenes`` with its default outputs;
the local run is ``-j 1`` (one pipeline, every video a source: the fastest local setting on this
machine, bench/RESULTS.md), the Ray run is ``--ray local`` (a cluster started in the command, one
actor per CPU). Their scene lists are compared (CSV, EDL).

Ends with ``RESULT local_over_ray=... local_s=... ray_s=... clips=... frames=... identical=...``
(``local_over_ray`` ≥ 0.8 is the target: the Ray run takes at most 1.25× the local run).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from framesift.samples_scenes import mixed_timeline
from framesift.scenes import footage
from framesift.stream.headers import stored_frames

ROOT = Path(__file__).resolve().parents[1]


def archive(folder: Path, generated: int, copies: int) -> list[Path]:
    clips: list[Path] = []
    try:  # the trailer under ``copies`` names: an archive's worth of 720p footage
        trailer = footage.bbb_trailer().path
        for k in range(copies):
            link = folder / f"trailer{k}.mp4"
            if not link.exists():
                link.symlink_to(trailer)
            clips.append(link)
    except RuntimeError as exc:
        print(f"  trailer: not used ({exc})")
    try:
        clips.append(footage.vtest().path)
    except RuntimeError as exc:
        print(f"  vtest: not used ({exc})")
    while len(clips) < 8 or generated > 0:
        k = len(clips)
        path = folder / f"gen{k:02d}.mp4"
        if not path.exists():
            tl = mixed_timeline(width=640, height=360, seed=k)
            more = mixed_timeline(width=640, height=360, seed=k + 50)
            tl.ops += more.ops
            tl.write(path, keyint=48)
        clips.append(path)
        generated -= 1
    return clips


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])}...: exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return elapsed


def lists(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".csv", ".edl")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--generated", type=int, default=6, help="generated clips (more where fewer than 8 in all)"
    )
    ap.add_argument("--copies", type=int, default=12, help="names the trailer appears under")
    ap.add_argument("--shard-seconds", type=float, default=600.0, help="the Ray run's --shard-seconds")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fs-ray-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    clips = archive(work, args.generated, args.copies)
    frames = sum(stored_frames(str(c)) for c in clips)
    print(f"archive: {len(clips)} clips, {frames} frames")
    base = [sys.executable, "-m", "framesift", "scenes", *map(str, clips), "--no-progress"]
    local_s = timed([*base, "-o", str(work / "local")])
    ray_s = timed(
        [*base, "-o", str(work / "ray"), "--ray", "local", "--shard-seconds", str(args.shard_seconds)]
    )
    same = lists(work / "local") == lists(work / "ray")
    print(f"{'run':<10} {'wall s':>8} {'frames/s':>9}")
    print(f"{'local -j1':<10} {local_s:>8.1f} {frames / local_s:>9.0f}")
    print(f"{'ray local':<10} {ray_s:>8.1f} {frames / ray_s:>9.0f}")
    print(f"scene lists identical: {same}")
    print(
        f"RESULT local_over_ray={local_s / ray_s:.2f} local_s={local_s:.1f} ray_s={ray_s:.1f} "
        f"clips={len(clips)} frames={frames} identical={int(same)}"
    )


if __name__ == "__main__":
    main()
