"""Soak: 8 RTSP sources at 25 fps from a local gst-rtsp-server through the pipeline for N minutes.

Weight-free analyzers (scene_change in pixel mode) when they exist, else the no-op stage, plus a probe
analyzer that sends one small event per frame to a sink measuring capture → sink latency. Every
10 s it samples RSS, thread counts (Python threads and OS threads), frames and drops by cause.
Reports RSS at minute 2 (or half-way for runs shorter than 4 min) vs the end (target ≤ 5 %
growth), whether the thread counts stayed constant, the p99 capture → sink latency, and the frames
dropped by cause. Not part of CI.

    python bench/soak.py [--minutes 20] [--sources 8] [--fps 25] [--size 160x120]
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from framesift.analyzers.base import Analyzer  # noqa: E402
from framesift.config import parse_config  # noqa: E402
from framesift.events import Event  # noqa: E402
from framesift.frame import Frame  # noqa: E402
from framesift.pipeline import Pipeline  # noqa: E402
from framesift.sinks.base import Sink  # noqa: E402
from tests.rtsp_server import RtspServer, gst_rtsp_available  # noqa: E402

SAMPLE_S = 10.0


@dataclass(frozen=True, kw_only=True)
class Probe(Event):
    """One per frame: when its frame was captured."""

    type: ClassVar[str] = "probe"
    captured: float


class ProbeAnalyzer(Analyzer):
    name = "probe"

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        return (Probe(source=frame.source_id, captured=frame.wallclock),)


class LatencySink(Sink):
    """Keeps the last ``size`` capture → sink latencies (bounded) and counts events."""

    name = "latency"

    def __init__(self, size: int = 200_000) -> None:
        self.values = np.zeros(size, np.float64)
        self.n = 0
        self.events = 0

    def write(self, event: Event) -> None:
        self.events += 1
        if isinstance(event, Probe):
            self.values[self.n % len(self.values)] = time.time() - event.captured
            self.n += 1

    def reset(self) -> None:
        self.n = 0

    def p(self, q: float, since: int = 0) -> float:
        """Percentile (ms) of the values recorded since the ``since``-th (those still kept)."""
        k = min(self.n, len(self.values))
        start = max(since, self.n - len(self.values))
        if self.n - start <= 0 or k == 0:
            return float("nan")
        idx = np.arange(start, self.n) % len(self.values)
        return float(np.percentile(self.values[idx], q)) * 1000


def os_thread_names() -> collections.Counter[str]:
    """Native threads of this process by name (Linux /proc)."""
    names: collections.Counter[str] = collections.Counter()
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    names[f.read().strip()] += 1
            except OSError:
                pass
    except OSError:
        pass
    return names


def weight_free_available() -> bool:
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("framesift.analyzers.scene_change", "framesift.engines.models.pixel")
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--size", default="160x120", help="WxH of the served streams")
    args = ap.parse_args()
    if not gst_rtsp_available():
        print("needs /usr/bin/python3 with python3-gi and gir1.2-gst-rtsp-server-1.0", file=sys.stderr)
        return 2
    mounts = {f"cam{i}": f"barcode:{args.size}@{args.fps}" for i in range(args.sources)}
    analyzers_cfg: list[dict[str, Any]] = []
    stage = "probe only (no-op stage)"
    if weight_free_available():
        analyzers_cfg = [{"type": "scene_change", "mode": "pixel"}]
        stage = "scene_change (pixel) + probe"
    total_s = args.minutes * 60
    mark_s = 120.0 if total_s >= 240 else total_s / 2  # "minute 2" (half-way for short runs)
    proc = psutil.Process()
    rows: list[tuple[float, float, int, int, int, int, str]] = []
    with RtspServer(mounts, start_timeout=60) as srv:
        cfg = parse_config(
            {
                "sources": [
                    {"type": "rtsp", "id": m, "url": srv.url(m), "buffer": {"capacity": 16}} for m in mounts
                ],
                "analyzers": analyzers_cfg,
                "engine": {"model": "pixel"},
                "metrics": {"port": 0},
            }
        )
        sink = LatencySink()
        print(
            f"soak: {args.sources} RTSP sources {args.size}@{args.fps} for {args.minutes:g} min; stage: {stage}"
        )
        with Pipeline(cfg, analyzers=[ProbeAnalyzer()], sinks=[sink]) as p:
            t0 = time.monotonic()
            rss_mark = threads_mark = None
            py_threads: list[int] = []
            os_threads: list[int] = []
            warm_reset = False
            window_start = 0
            window_p99: list[float] = []
            names_by_count: dict[int, collections.Counter[str]] = {}
            next_sample = t0 + SAMPLE_S
            while time.monotonic() - t0 < total_s:
                time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
                if time.monotonic() < next_sample:
                    continue
                next_sample += SAMPLE_S
                el = time.monotonic() - t0
                p99_win = sink.p(99, window_start)
                window_start = sink.n
                if not warm_reset and el >= 30:  # latency after start-up
                    sink.reset()
                    window_start = 0
                    warm_reset = True
                elif warm_reset:
                    window_p99.append(p99_win)
                gc.collect()
                rss = proc.memory_info().rss / 2**20
                st = p.status()
                staged = sum(s["frames_staged"] for s in st["sources"].values())
                drops: dict[str, int] = {}
                for s in st["sources"].values():
                    for cause, n in s["drops"].items():
                        drops[cause] = drops.get(cause, 0) + n
                n_py, n_os = threading.active_count(), proc.num_threads()
                rows.append((el, rss, n_py, n_os, staged, sum(drops.values()), str(drops or "-")))
                print(
                    f"{el:7.0f}s  rss {rss:7.1f} MiB  threads {n_py:3d}/{n_os:3d}  staged {staged:8d}"
                    f"  dropped {sum(drops.values()):6d} {drops or ''}  p99 last 10 s {p99_win:6.1f} ms",
                    flush=True,
                )
                if el >= mark_s:
                    if rss_mark is None:
                        rss_mark, threads_mark = rss, (n_py, n_os)
                    py_threads.append(n_py)
                    os_threads.append(n_os)
                    names_by_count.setdefault(n_os, os_thread_names())
            st = p.status()
            p99, p50 = sink.p(99), sink.p(50)
            events = sink.events
        up = sum(1 for s in st["sources"].values() if s["state"] == "up")
    rss_end = rows[-1][1]
    growth = (rss_end - rss_mark) / rss_mark * 100 if rss_mark else float("nan")
    drops_total: dict[str, int] = {}
    for s in st["sources"].values():
        for cause, n in s["drops"].items():
            drops_total[cause] = drops_total.get(cause, 0) + n
    staged = sum(s["frames_staged"] for s in st["sources"].values())
    decoded = sum(s["frames_decoded"] for s in st["sources"].values())
    constant = bool(py_threads) and len(set(py_threads)) == 1  # the pipeline's own threads
    print()
    print(f"{'metric':34s} value")
    print(f"{'duration':34s} {args.minutes:g} min ({stage})")
    print(f"{'sources up at the end':34s} {up}/{args.sources}")
    print(f"{'frames decoded / staged':34s} {decoded} / {staged}")
    print(f"{'expected frames (sources*fps*s)':34s} {int(args.sources * args.fps * total_s)}")
    print(f"{'events to the latency sink':34s} {events}")
    print(f"{f'RSS at mark ({mark_s:.0f} s) / end MiB':34s} {rss_mark:.1f} / {rss_end:.1f}")
    print(f"{'RSS growth':34s} {growth:+.2f} %")
    print(f"{'threads py/os at mark':34s} {threads_mark}")
    print(f"{'threads py range after mark':34s} {min(py_threads)}..{max(py_threads)}")
    print(f"{'threads os range after mark':34s} {min(os_threads)}..{max(os_threads)}")
    if names_by_count:
        lo, hi = names_by_count[min(names_by_count)], names_by_count[max(names_by_count)]
        diff = {k: hi[k] - lo[k] for k in set(hi) | set(lo) if hi[k] != lo[k]}
        print(f"{'native threads that come and go':34s} {diff or 'none'}")
    print(f"{'capture->sink latency p50 / p99':34s} {p50:.1f} / {p99:.1f} ms (after the first 30 s)")
    if window_p99:
        print(
            f"{'p99 per 10 s window min/median/max':34s} {min(window_p99):.1f} / "
            f"{float(np.median(window_p99)):.1f} / {max(window_p99):.1f} ms"
        )
    print(f"{'dropped by cause':34s} {drops_total or 'none'}")
    dropped = ",".join(f"{k}:{v}" for k, v in sorted(drops_total.items())) or "0"
    print(
        f"RESULT rss_growth={growth / 100:.4f} threads_constant={str(constant).lower()} "
        f"os_threads={min(os_threads)}..{max(os_threads)} p99_latency_ms={p99:.1f} dropped={dropped}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
