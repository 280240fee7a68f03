"""CaptureWorker on files: statuses, errors, buffer policies under a slow consumer, prompt stop."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from framesift.config.sources import ReconnectConfig
from framesift.errors import DecodeError, SourceError
from framesift.events import SourceStatus
from framesift.frame import Frame
from framesift.samples import read_barcode
from framesift.stream.capture import CaptureWorker, backoff_delay
from framesift.stream.factory import build_source
from framesift.stream.ringbuffer import BufferClosed, OnFull, RingBuffer
from framesift.stream.sources.file import FileSourceConfig


def run_worker(cfg, buffer: RingBuffer[Frame], consume_delay: float = 0.0):
    events: list[SourceStatus] = []
    worker = CaptureWorker(build_source(cfg), buffer, on_status=events.append)
    worker.start()
    got: list[int] = []
    while True:
        try:
            frame = buffer.get(timeout=5)
        except BufferClosed:
            break
        assert frame is not None, "no frame within 5 s"
        got.append(read_barcode(frame.image))
        if consume_delay:
            time.sleep(consume_delay)
    assert worker.join(10)
    return worker, events, got


def test_file_ends_with_eof_and_closes_buffer(make_clip) -> None:
    info = make_clip(segments=(30,), width=160, height=120)
    buf: RingBuffer[Frame] = RingBuffer(4, "block")
    worker, events, got = run_worker(FileSourceConfig(path=str(info.path)), buf)
    assert got == list(range(30))
    assert [e.state for e in events] == ["connecting", "up", "eof"]
    assert events[-1].frames == 30 and events[-1].source == "clip"
    assert worker.error is None and worker.done and buf.closed
    assert worker._thread.name == "capture:clip"


def test_unreadable_file_fails_with_source_named(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_text("garbage\n" * 10)
    buf: RingBuffer[Frame] = RingBuffer(4, "block")
    worker, events, got = run_worker(FileSourceConfig(path=str(bad), id="cam7"), buf)
    assert got == []
    assert [e.state for e in events] == ["connecting", "failed"]
    assert isinstance(worker.error, SourceError)
    msg = str(worker.error)
    assert msg.startswith("source 'cam7': ") and str(bad) in msg and "\n" not in msg
    assert events[-1].detail == msg
    assert buf.closed


def test_failed_keeps_error_class(tmp_path: Path) -> None:
    from tests.stream.test_bad_input import audio_only

    path = audio_only(tmp_path / "a.m4a")
    worker, _events, _ = run_worker(FileSourceConfig(path=str(path)), RingBuffer(2, "block"))
    assert isinstance(worker.error, DecodeError)


def test_block_loses_nothing_under_slow_consumer(make_clip) -> None:
    info = make_clip(segments=(60,), width=160, height=120)
    buf: RingBuffer[Frame] = RingBuffer(3, "block")
    _w, _e, got = run_worker(FileSourceConfig(path=str(info.path)), buf, consume_delay=0.005)
    assert got == list(range(60))
    assert sum(buf.drops.values()) == 0
    assert buf.high_water == 3  # the producer really waited on a full buffer


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_drop_policies_count_drops_by_cause(make_clip, policy: OnFull) -> None:
    info = make_clip(segments=(80,), width=160, height=120)
    buf: RingBuffer[Frame] = RingBuffer(4, policy)
    # realtime pacing makes the file a 25 fps "live" producer; the consumer takes 10 frames/s
    cfg = FileSourceConfig(path=str(info.path), realtime=True)
    _w, _e, got = run_worker(cfg, buf, consume_delay=0.1)
    assert buf.drops["buffer_full"] > 0
    assert len(got) + buf.drops["buffer_full"] == 80  # every frame delivered or counted
    assert got == sorted(got) and len(set(got)) == len(got)
    if policy == "drop_oldest":
        assert got[-1] == 79  # the newest frames win
    else:
        assert got[:4] == [0, 1, 2, 3]  # the first ones were kept, later ones refused


def test_stop_releases_a_blocked_put_promptly(make_clip) -> None:
    info = make_clip(segments=(50,), width=160, height=120)
    buf: RingBuffer[Frame] = RingBuffer(2, "block")
    events: list[SourceStatus] = []
    worker = CaptureWorker(build_source(FileSourceConfig(path=str(info.path))), buf, on_status=events.append)
    worker.start()
    deadline = time.monotonic() + 10
    while len(buf) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(buf) == 2  # full; the producer is blocked in put()
    worker.stop()
    assert worker.join(5)
    assert events[-1].state == "stopped" and worker.error is None
    assert buf.closed and buf.drops["closed"] == 1


def test_stop_during_realtime_pacing(make_clip) -> None:
    info = make_clip(segments=(10,), fps=1, width=160, height=120)  # 10 s at 1 fps
    buf: RingBuffer[Frame] = RingBuffer(4, "drop_oldest")
    events: list[SourceStatus] = []
    cfg = FileSourceConfig(path=str(info.path), realtime=True, loop=True)
    worker = CaptureWorker(build_source(cfg), buf, on_status=events.append)
    worker.start()
    assert buf.get(timeout=5) is not None
    worker.stop()
    assert worker.join(3)
    assert [e.state for e in events] == ["connecting", "up", "stopped"]


def test_on_status_exception_does_not_kill_capture(make_clip) -> None:
    info = make_clip(segments=(5,), width=160, height=120)

    def boom(_e: SourceStatus) -> None:
        raise RuntimeError("callback bug")

    buf: RingBuffer[Frame] = RingBuffer(8, "block")
    worker = CaptureWorker(build_source(FileSourceConfig(path=str(info.path))), buf, on_status=boom)
    worker.start()
    assert worker.join(10) and worker.error is None and len(buf) == 5


def test_backoff_grows_caps_and_jitters() -> None:
    cfg = ReconnectConfig(initial_s=0.5, max_s=4.0, multiplier=2.0, jitter=0.0)
    assert [backoff_delay(cfg, a) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jit = ReconnectConfig(initial_s=1.0, max_s=100.0, multiplier=2.0, jitter=0.2)
    rng = random.Random(1)
    vals = [backoff_delay(jit, 3, rng) for _ in range(200)]
    assert all(3.2 <= v <= 4.8 for v in vals) and len(set(vals)) > 100


def test_stop_before_start_and_join_unstarted() -> None:
    buf: RingBuffer[Frame] = RingBuffer(2)
    worker = CaptureWorker(
        build_source(FileSourceConfig(path="/nonexistent.mp4")), buf, on_status=lambda e: None
    )
    assert worker.join(0.1) and not worker.done
    worker.stop()
    assert buf.closed
    assert threading.active_count() >= 1
