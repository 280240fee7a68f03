"""Shared fixtures: generated clips, and a guard that fails any test leaving threads or processes behind."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from framesift.samples import ClipInfo, write_clip

LEAK_GRACE_S = 5.0


def _children() -> set[int]:
    try:
        return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True) if p.is_running()}
    except psutil.Error:
        return set()


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves a thread or child process running (after a short grace period).

    Module- and session-scoped fixtures (servers shared by several tests) are set up before this
    fixture runs, so what they start is part of the baseline.
    """
    threads_before = set(threading.enumerate())
    procs_before = _children()
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        new_threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        new_procs = [p for p in _children() - procs_before if psutil.pid_exists(p)]
        live_procs = []
        for pid in new_procs:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    live_procs.append(pid)
            except psutil.Error:
                pass
        if not new_threads and not live_procs:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    msg = []
    if new_threads:
        msg.append("threads left running: " + ", ".join(sorted(t.name for t in new_threads)))
    if live_procs:
        msg.append(f"child processes left running: {live_procs}")
    pytest.fail("; ".join(msg))


@pytest.fixture(autouse=True)
def reset_framesift_logging() -> Iterator[None]:
    """Tests that run the CLI in-process call ``setup_logging``, which stops propagation to the root
    logger (and so hides records from ``caplog``); undo it after every test."""
    yield
    logger = logging.getLogger("framesift")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def make_clip(tmp_path: Path) -> Callable[..., ClipInfo]:
    """Factory: ``make_clip(name="clip.mp4", segments=(50,), codec="h264", ...)`` → ClipInfo."""

    def _make(name: str = "clip.mp4", **kwargs: object) -> ClipInfo:
        return write_clip(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return _make
