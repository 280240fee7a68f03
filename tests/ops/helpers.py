"""Shared helpers of the operations tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from framesift.analyzers.base import Analyzer
from framesift.events import ErrorEvent, Event
from framesift.frame import Frame


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.05)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file, parsed (fails on a partial or corrupt line)."""
    if not path.exists():
        return []
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "partial last line"
    return [json.loads(line) for line in text.splitlines()]


class EndMarker(Analyzer):
    """Counts frames per source and emits one ``on_end`` ErrorEvent (stage ``on_end``) per source."""

    name = "end_marker"

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        self.frames[frame.source_id] = self.frames.get(frame.source_id, 0) + 1
        return ()

    def on_end(self, source_id: str) -> Iterable[Event]:
        n = self.frames.get(source_id, 0)
        return [ErrorEvent(source=source_id, stage="on_end", message=f"{n} frames", count=n)]
