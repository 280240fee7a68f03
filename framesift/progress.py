"""Console progress: a tqdm bar for file sources (frames, fps, ETA), a periodic status line for live."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from framesift.pipeline.status import PipelineStatus


class Bar(tqdm):
    """tqdm without its monitor thread (the pipeline joins every thread it starts)."""

    monitor_interval = 0


def status_line(status: PipelineStatus) -> str:
    """One line: ``cam1 up 25.0 fps drops 3 | cam2 reconnecting 0.0 fps drops 0``."""
    parts = []
    for sid, s in status.sources.items():
        drops = sum(s.drops.values())
        age = s.last_frame_age_s
        age_s = f" last {age:.1f}s ago" if age is not None and age > 2 else ""
        parts.append(f"{sid} {s.state} {s.fps:.1f} fps drops {drops}{age_s}")
    backlog = sum(k.backlog for k in status.sinks.values())
    return " | ".join(parts) + (f" | sink backlog {backlog}" if backlog else "")


class Progress:
    """Reads a pipeline's status from its own thread: a bar over ``total`` frames when every source
    is a file (``files_only``) and the stream is a terminal, else a status line every ``interval_s``."""

    def __init__(
        self,
        status: Callable[[], PipelineStatus],
        *,
        files_only: bool = False,
        total: int | None = None,
        interval_s: float = 10.0,
        stream: TextIO | None = None,
    ) -> None:
        self.status = status
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self.files_only = files_only
        self.total = total if files_only else None

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
                st = self.status()
                n = sum(s.frames_staged for s in st.sources.values())
                drops = sum(sum(s.drops.values()) for s in st.sources.values())
                if bar.total is not None and n > bar.total:
                    bar.total = n
                bar.update(n - bar.n)
                if drops:
                    bar.set_postfix(drops=drops, refresh=False)
                if stopping:  # a bar cut short (Ctrl-C, a failure) is cleared, not left half drawn
                    bar.leave = bar.total is not None and bar.n >= bar.total
                    break

    def _lines(self) -> None:
        while not self._stop.wait(self.interval_s):
            line = status_line(self.status())
            print(f"[{time.strftime('%H:%M:%S')}] {line}", file=self.stream, flush=True)
