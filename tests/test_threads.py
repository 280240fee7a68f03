"""The thread plan: inference and decoder threads from the core count; sources get the plan's."""

from __future__ import annotations

from pathlib import Path

import pytest

from framesift.engines.batcher import Batcher
from framesift.pipeline.sources import SourceSet
from framesift.samples import write_clip
from framesift.stream.sources.file import FileSourceConfig
from framesift.threads import cpu_cores, thread_plan


def test_small_machines_share_cores_between_a_model_and_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAMESIFT_THREADS", raising=False)
    two = thread_plan(cores=2)
    assert (two.inference, two.decode, two.spin) == (2, 1, False)
    assert "1 decoder thread per source" in two.reason and "not spinning" in two.reason
    assert thread_plan(cores=8).decode == 2 and thread_plan(cores=8).spin
    assert thread_plan(cores=32).decode == 0  # FFmpeg's choice on big machines
    no_model = thread_plan(model=False, cores=2)
    assert no_model.decode == 0 and no_model.spin and "no model on every frame" in no_model.reason
    monkeypatch.setenv("FRAMESIFT_THREADS", "1")
    assert thread_plan(cores=2).inference == 1 and "FRAMESIFT_THREADS" in thread_plan(cores=2).reason
    assert thread_plan().cores == cpu_cores()


def test_sources_get_the_plans_decoder_threads_unless_they_set_their_own(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4", segments=(4,), width=64, height=48).path
    sources = SourceSet(
        Batcher(max_batch=2, max_wait_ms=10, stale_after_ms=None), lambda run, ev: None, decode_threads=1
    )
    planned = sources.make(FileSourceConfig(path=str(clip)), "a")
    own = sources.make(FileSourceConfig(path=str(clip), threads=3), "b")
    assert planned.cfg.threads == 1 and own.cfg.threads == 3
    default = SourceSet(Batcher(max_batch=2, max_wait_ms=10, stale_after_ms=None), lambda run, ev: None)
    assert default.make(FileSourceConfig(path=str(clip)), "c").cfg.threads == 0


def test_small_machines_run_opencv_single_threaded() -> None:
    import cv2

    from framesift.threads import limit_opencv

    assert thread_plan(cores=2).opencv == 1 and "OpenCV 1 thread" in thread_plan(cores=2).reason
    assert thread_plan(model=False, cores=4).opencv == 1
    assert thread_plan(cores=16).opencv == 0 and "OpenCV" not in thread_plan(cores=16).reason
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(4)
        limit_opencv(thread_plan(cores=16))
        assert cv2.getNumThreads() == 4  # a big machine keeps OpenCV's pool
        limit_opencv(thread_plan(cores=2))
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(before)
