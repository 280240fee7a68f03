"""The thread plan: how many threads inference and decoding get, from the cores this process may use.

On a small machine (a station's 2 to 4 cores) a model engine and FFmpeg's decoder threads compete for
the same cores: FFmpeg's own choice is about one decoder thread per core for each source, and ONNX
Runtime's threads spin while they wait for work, taking the cores the decoder needs. When a model runs,
the plan gives each source's decoder one thread on up to 4 cores (two on up to 8, FFmpeg's choice above)
and keeps the engines' threads from spinning there; with no model (pixel signals only) decoding is the
work, and FFmpeg keeps its choice. TransNetV2 counts as no model here: it runs once per 50 frames, and
at 720p its pipeline is faster with FFmpeg's decoder threads (2.11 s for 600 frames, INT8, 2 cores)
than with one (2.41-2.57 s). On up to 4 cores OpenCV runs single-threaded (:func:`limit_opencv`):
its per-frame calls (colour conversion, resizes) are too short for its pool, whose workers spin
between calls on the cores the decoder threads need (``framesift collect``, 720p, 2 cores: 330 → 380
frames per CPU-second). ``FRAMESIFT_THREADS`` sets the inference threads; a source's own ``threads``
setting always wins.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

__all__ = ["ThreadPlan", "cpu_cores", "limit_opencv", "thread_plan"]

log = logging.getLogger("framesift.threads")

SMALL = 4  # cores up to which engines and decoders are planned to share


@dataclass(frozen=True)
class ThreadPlan:
    """``inference``: intra-op threads of each engine; ``decode``: decoder threads per source (0:
    FFmpeg's choice); ``spin``: whether engine threads may spin-wait; ``reason``: one line;
    ``opencv``: OpenCV's threads (0: its own choice)."""

    cores: int
    inference: int
    decode: int
    spin: bool
    reason: str
    opencv: int = 0


def cpu_cores() -> int:
    """The CPUs this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def thread_plan(*, model: bool = True, cores: int | None = None) -> ThreadPlan:
    """The plan for a process that runs a model engine (``model``) or only decodes and measures."""
    n = cores or cpu_cores()
    env = os.environ.get("FRAMESIFT_THREADS", "")
    inference = int(env) if env.isdigit() and int(env) > 0 else n
    set_by = " (FRAMESIFT_THREADS)" if inference != n else ""
    small = n <= SMALL
    opencv_note = ", OpenCV 1 thread" if small else ""
    if not model:
        return ThreadPlan(
            n,
            inference,
            0,
            True,
            f"{n} cores, no model on every frame: decoders take FFmpeg's thread count{opencv_note}",
            opencv=1 if small else 0,
        )
    if small:
        return ThreadPlan(
            n,
            inference,
            1,
            False,
            f"{n} cores shared by a model and decoding: inference {inference} threads{set_by}, not "
            f"spinning; 1 decoder thread per source{opencv_note}",
            opencv=1,
        )
    if n <= 2 * SMALL:
        return ThreadPlan(
            n, inference, 2, True, f"{n} cores: inference {inference}{set_by}, 2 decoder threads"
        )
    return ThreadPlan(
        n, inference, 0, True, f"{n} cores: inference {inference}{set_by}, FFmpeg's decoder threads"
    )


def limit_opencv(plan: ThreadPlan) -> None:
    """Cap OpenCV's threads (process-wide) at ``plan.opencv``; a lower count set before is kept."""
    if plan.opencv <= 0:
        return
    import cv2

    if cv2.getNumThreads() > plan.opencv:
        cv2.setNumThreads(plan.opencv)
