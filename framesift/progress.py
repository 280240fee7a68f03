"""Console progress: a tqdm bar for file sources (frames, fps, ETA), a periodic status line for live."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

if TYPE_CHECKING:
    from framesift.pipeline import Pipeline


class Bar(tqdm):
    """tqdm without its monitor thread (the pipeline joins every thread it starts)."""

    monitor_interval = 0


def expected_frames(cfg: Any) -> int | None:
    """Frames a file source will deliver, from the container's frame count or duration (None if unknown)."""
    if getattr(cfg, "type", None) != "file" or getattr(cfg, "loop", False):
        return None
    if not os.path.isfile(cfg.path):  # a FIFO or device would block the open; the source reports it
        return None
    try:
        import av

        with av.open(cfg.path) as c:
            s = c.streams.video[0]
            rate = float(s.average_rate or s.guessed_rate or 0)
            if s.duration is not None and s.time_base is not None:
                duration = float(s.duration * s.time_base)
            elif c.duration is not None:
                duration = c.duration / 1_000_000
            else:
                duration = (s.frames / rate) if s.frames and rate else 0.0
            n = s.frames or round(duration * rate)
    except Exception:
        return None
    if not n:
        return None
    if duration > 0 and (cfg.start is not None or cfg.end is not None):
        start, end = cfg.start or 0.0, min(cfg.end or duration, duration)
        n = int(n * max(0.0, end - start) / duration)
    if cfg.target_fps and rate > cfg.target_fps:
        n = int(n * cfg.target_fps / rate)
    return n


def count_frames(videos: list[str]) -> int | None:
    """Frames in all of ``videos`` by their containers' counts (None if any is unknown): a bar's total."""
    import av

    total = 0
    for v in videos:
        if not os.path.isfile(v):  # a FIFO or device would block the open; the source reports it
            return None
        try:
            with av.open(v) as c:
                n = c.streams.video[0].frames
        except Exception:
            return None
        if not n:
            return None
        total += n
    return total


def status_line(status: dict[str, Any]) -> str:
    """One line: ``cam1 up 25.0 fps drops 3 | cam2 reconnecting 0.0 fps drops 0``."""
    parts = []
    for sid, s in status["sources"].items():
        drops = sum(s["drops"].values())
        age = s["last_frame_age_s"]
        age_s = f" last {age:.1f}s ago" if age is not None and age > 2 else ""
        parts.append(f"{sid} {s['state']} {s['fps']:.1f} fps drops {drops}{age_s}")
    backlog = sum(k["backlog"] for k in status["sinks"].values())
    return " | ".join(parts) + (f" | sink backlog {backlog}" if backlog else "")


class Progress:
    """Started and stopped by the pipeline; reads ``pipeline.status()`` from its own thread."""

    def __init__(self, pipeline: Pipeline, *, interval_s: float = 10.0, stream: TextIO | None = None) -> None:
        self.pipeline = pipeline
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        runs = list(pipeline.sources.values())
        self.files_only = bool(runs) and all(not r.live for r in runs)
        self.total: int | None = None
        if self.files_only:
            totals = [expected_frames(r.cfg) for r in runs]
            self.total = None if any(t is None for t in totals) else sum(t or 0 for t in totals)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _run(self) -> None:
        isatty = getattr(self.stream, "isatty", None)
        if self.files_only and isatty is not None and isatty():
            self._bar()
        else:
            self._lines()

    def _bar(self) -> None:
        with Bar(total=self.total, unit="frame", file=self.stream, dynamic_ncols=True, leave=True) as bar:
            while True:
                stopping = self._stop.wait(0.5)
                st = self.pipeline.status()
                n = sum(s["frames_staged"] for s in st["sources"].values())
                drops = sum(sum(s["drops"].values()) for s in st["sources"].values())
                if bar.total is not None and n > bar.total:
                    bar.total = n
                bar.update(n - bar.n)
                if drops:
                    bar.set_postfix(drops=drops, refresh=False)
                if stopping:
                    break

    def _lines(self) -> None:
        while not self._stop.wait(self.interval_s):
            line = status_line(self.pipeline.status())
            print(f"[{time.strftime('%H:%M:%S')}] {line}", file=self.stream, flush=True)
