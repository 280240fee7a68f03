"""Live RTSP capture against a real gst-rtsp-server on 127.0.0.1: frames, kill/restart, SIGSTOP, two sources."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from fractions import Fraction

import pytest

from framesift.config.sources import ReconnectConfig
from framesift.events import SourceStatus
from framesift.frame import Frame
from framesift.samples import read_barcode
from framesift.stream.capture import CaptureWorker
from framesift.stream.factory import build_source
from framesift.stream.ringbuffer import RingBuffer
from framesift.stream.sources.rtsp import RtspSourceConfig
from tests.rtsp_server import RtspServer, require_gst_rtsp, rtsp_servers

FAST = ReconnectConfig(initial_s=0.2, max_s=2.0, multiplier=2.0, jitter=0.1)


class Recorder:
    """Collects status events (thread-safe) and waits for conditions on them."""

    def __init__(self) -> None:
        self.events: list[SourceStatus] = []
        self._lock = threading.Lock()

    def __call__(self, event: SourceStatus) -> None:
        with self._lock:
            self.events.append(event)

    def states(self) -> list[str]:
        with self._lock:
            return [e.state for e in self.events]

    def since(self, n: int) -> list[SourceStatus]:
        with self._lock:
            return self.events[n:]

    def wait(self, cond: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; states: {self.states()}")
            time.sleep(0.05)


def cfg_for(url: str, **kw: object) -> RtspSourceConfig:
    return RtspSourceConfig(url=url, open_timeout_s=2.0, read_timeout_s=1.0, **kw)


def start_worker(url: str, rec: Recorder, *, watchdog_s: float | None = None, **kw: object):
    buf: RingBuffer[Frame] = RingBuffer(16, "drop_oldest")
    worker = CaptureWorker(
        build_source(cfg_for(url, **kw)), buf, on_status=rec, reconnect=FAST, watchdog_s=watchdog_s
    )
    worker.start()
    return worker, buf


def wait_frames(worker: CaptureWorker, more_than: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while worker.frames <= more_than:
        if time.monotonic() > deadline:
            pytest.fail(f"no new frames after {more_than} (state {worker.state})")
        time.sleep(0.05)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_frames_arrive(rtsp_server: RtspServer, transport: str) -> None:
    src = build_source(cfg_for(rtsp_server.url(), transport=transport))
    assert src.live and src.id == f"127.0.0.1:{rtsp_server.port}_stream"
    src.open()
    frames: list[Frame] = []
    try:
        for f in src.frames():
            frames.append(f)
            if len(frames) == 8:
                break
    finally:
        src.close()
    codes = [read_barcode(f.image) for f in frames]
    assert codes == sorted(codes) and len(set(codes)) == 8  # in order (the server counts frames)
    assert [f.index for f in frames] == list(range(8))
    assert all(f.time_base == Fraction(1, 90000) for f in frames)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert frames[0].image.shape == (120, 160, 3)
    assert abs(frames[-1].wallclock - time.time()) < 30


def test_server_killed_then_restarted(rtsp_server: RtspServer) -> None:
    rec = Recorder()
    worker, buf = start_worker(rtsp_server.url(), rec)
    try:
        wait_frames(worker, 5)
        mark = len(rec.events)
        rtsp_server.kill()
        rec.wait(
            lambda: sum(e.state == "reconnecting" for e in rec.since(mark)) >= 3,
            15,
            "three reconnect attempts",
        )
        after = rec.since(mark)
        assert after[0].state == "disconnected"
        retries = [e for e in after if e.state == "reconnecting"]
        assert [e.attempt for e in retries[:3]] == [1, 2, 3]
        delays = [e.delay_s or 0.0 for e in retries[:3]]
        assert 0 < delays[0] < delays[1] < delays[2]  # exponential backoff
        assert any("connection refused" in e.detail for e in after if e.state == "disconnected")
        assert worker.source.stats.reconnects >= 3
        before = worker.frames
        mark = len(rec.events)
        rtsp_server.restart()
        rec.wait(lambda: "up" in [e.state for e in rec.since(mark)], 15, "up after restart")
        wait_frames(worker, before)
        assert worker.error is None
        indices = []
        while (f := buf.get_nowait()) is not None:
            indices.append(f.index)
        assert indices == sorted(indices) and indices[-1] >= before  # index keeps counting
    finally:
        worker.stop()
        assert worker.join(5)
    assert rec.states()[-1] == "stopped"
    assert buf.closed


def test_server_paused_read_timeout_then_reconnect(rtsp_server: RtspServer) -> None:
    rec = Recorder()
    worker, _buf = start_worker(rtsp_server.url(), rec)
    try:
        wait_frames(worker, 5)
        mark = len(rec.events)
        rtsp_server.pause()
        t0 = time.monotonic()
        rec.wait(lambda: "disconnected" in [e.state for e in rec.since(mark)], 8, "a read timeout")
        assert time.monotonic() - t0 < 6  # bounded by read_timeout_s, no hang
        disc = next(e for e in rec.since(mark) if e.state == "disconnected")
        assert "read timeout" in disc.detail
        rec.wait(lambda: "reconnecting" in [e.state for e in rec.since(mark)], 5, "a reconnect")
        before = worker.frames
        mark = len(rec.events)
        rtsp_server.resume()
        rec.wait(lambda: "up" in [e.state for e in rec.since(mark)], 15, "up after resume")
        wait_frames(worker, before)
    finally:
        worker.stop()
        assert worker.join(5)


def test_two_sources_one_broken_other_unaffected() -> None:
    require_gst_rtsp()
    with rtsp_servers({"a": "barcode:160x120@10"}, {"b": "barcode:160x120@10"}) as (good, bad):
        rec_good, rec_bad = Recorder(), Recorder()
        w_good, _ = start_worker(good.url("a"), rec_good)
        w_bad, _ = start_worker(bad.url("b"), rec_bad)
        try:
            wait_frames(w_good, 3)
            wait_frames(w_bad, 3)
            bad.kill()
            rec_bad.wait(lambda: "reconnecting" in rec_bad.states(), 10, "the broken source to retry")
            before = w_good.frames
            time.sleep(1.5)
            assert w_good.frames >= before + 5  # ~10 fps kept flowing
            assert rec_good.states() == ["connecting", "up"]
            assert w_bad.state in ("connecting", "disconnected", "reconnecting")
            assert w_good.error is None and w_bad.error is None
        finally:
            w_good.stop()
            w_bad.stop()
            assert w_good.join(5) and w_bad.join(5)


def test_give_up_after_attempts_fails() -> None:
    require_gst_rtsp()
    srv = RtspServer()  # never started: nothing listens on its port
    rec = Recorder()
    buf: RingBuffer[Frame] = RingBuffer(4)
    reconnect = ReconnectConfig(initial_s=0.05, max_s=0.1, jitter=0.0, give_up_after=2)
    worker = CaptureWorker(build_source(cfg_for(srv.url())), buf, on_status=rec, reconnect=reconnect)
    worker.start()
    assert worker.join(10)
    states = rec.states()
    assert states.count("reconnecting") == 2 and states[-1] == "failed"
    assert worker.error is not None and "gave up after 2" in str(worker.error)
    assert str(worker.error).startswith(f"source '127.0.0.1:{srv.port}_stream'")
    assert buf.closed
    srv.close()


def test_watchdog_restarts_a_source_without_frames(rtsp_server: RtspServer) -> None:
    rec = Recorder()
    # target_fps=0.05 keeps one frame per 20 s: the stream keeps sending, but no frame reaches us
    worker, _ = start_worker(rtsp_server.url(), rec, watchdog_s=1.0, target_fps=0.05)
    try:
        rec.wait(lambda: "stalled" in rec.states(), 10, "the watchdog")
        rec.wait(lambda: rec.states().count("up") >= 2, 10, "the restart")
        stalled = next(e for e in rec.events if e.state == "stalled")
        assert "no frame for 1 s" in stalled.detail
        i = rec.states().index("stalled")
        assert rec.states()[i + 1] == "reconnecting"
        wait_frames(worker, 1)  # the restarted session delivers its first frame
    finally:
        worker.stop()
        assert worker.join(5)


def test_opencv_backend_reads_rtsp(rtsp_server: RtspServer) -> None:
    src = build_source(cfg_for(rtsp_server.url(), decoder="opencv"))
    src.open()
    frames: list[Frame] = []
    try:
        for f in src.frames():
            frames.append(f)
            if len(frames) == 5:
                break
    finally:
        src.close()
    codes = [read_barcode(f.image) for f in frames]
    assert codes == sorted(codes) and len(set(codes)) == 5
    assert all(f.time_base == Fraction(1, 1000) for f in frames)


def test_stop_during_a_blocked_read_is_bounded(rtsp_server: RtspServer) -> None:
    rec = Recorder()
    worker, buf = start_worker(rtsp_server.url(), rec)
    try:
        wait_frames(worker, 2)
        rtsp_server.pause()  # the next read blocks inside FFmpeg
        time.sleep(0.3)
    finally:
        t0 = time.monotonic()
        worker.stop()
        finished = worker.join(5)
        rtsp_server.resume()
    assert finished and time.monotonic() - t0 < 3  # read_timeout_s = 1
    assert rec.states()[-1] == "stopped" and buf.closed
