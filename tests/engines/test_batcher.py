"""Batcher: fairness across sources, max_wait, staleness, per-source order, end of input."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from framesift.engines.batcher import Batcher
from framesift.frame import Frame
from framesift.stream.ringbuffer import RingBuffer

IMG = np.zeros((4, 4, 3), np.uint8)


def frame(sid: str, i: int, wallclock: float | None = None) -> Frame:
    return Frame(sid, i, i, Fraction(1, 25), time.time() if wallclock is None else wallclock, IMG)


def add(b: Batcher, sid: str, n: int, *, live: bool = False, cap: int = 100) -> RingBuffer[Frame]:
    buf: RingBuffer[Frame] = RingBuffer(cap, "block", name=sid, waker=b.waker)
    for i in range(n):
        buf.put(frame(sid, i))
    b.add_source(sid, buf, live)
    return buf


def test_round_robin_is_fair_and_keeps_order() -> None:
    b = Batcher(max_batch=6, max_wait_ms=1000, stale_after_ms=None)
    bufs = [add(b, s, 10) for s in ("a", "b", "c")]
    stop = threading.Event()
    first = b.next_batch(stop)
    assert first is not None and len(first) == 6
    assert sorted(f.source_id for f in first) == ["a", "a", "b", "b", "c", "c"]
    for buf in bufs:
        buf.close()
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    for f in first:
        seen[f.source_id].append(f.index)
    while (batch := b.next_batch(stop)) is not None:
        for f in batch:
            seen[f.source_id].append(f.index)
    assert seen == {s: list(range(10)) for s in "abc"}
    assert sorted(b.ended()) == ["a", "b", "c"]


def test_busy_source_does_not_starve_a_quiet_one() -> None:
    b = Batcher(max_batch=4, max_wait_ms=1000, stale_after_ms=None)
    add(b, "busy", 100)
    add(b, "quiet", 2)
    batch = b.next_batch(threading.Event())
    assert batch is not None
    assert [f.source_id for f in batch].count("quiet") == 2


def test_partial_batch_released_after_max_wait_while_a_source_stays_silent() -> None:
    b = Batcher(max_batch=8, max_wait_ms=20, stale_after_ms=None)
    add(b, "slow", 0)  # open, never produces
    add(b, "one", 1)
    batch = b.next_batch(threading.Event())
    assert batch is not None and [f.source_id for f in batch] == ["one"]


def test_waiting_consumer_wakes_on_put_from_another_thread() -> None:
    b = Batcher(max_batch=3, max_wait_ms=5000, stale_after_ms=None)
    buf = add(b, "a", 0)

    def produce() -> None:
        for i in range(3):
            time.sleep(0.01)
            buf.put(frame("a", i))

    t = threading.Thread(target=produce)
    t.start()
    batch = b.next_batch(threading.Event())  # full batch releases well before max_wait
    t.join()
    assert batch is not None and [f.index for f in batch] == [0, 1, 2]


def test_stale_live_frames_dropped_and_counted_on_their_buffer() -> None:
    b = Batcher(max_batch=10, max_wait_ms=0, stale_after_ms=500)
    live: RingBuffer[Frame] = RingBuffer(10, "drop_oldest", name="cam", waker=b.waker)
    old = time.time() - 5
    live.put(frame("cam", 0, old))
    live.put(frame("cam", 1, old))
    live.put(frame("cam", 2))
    b.add_source("cam", live, True)
    f: RingBuffer[Frame] = RingBuffer(10, "block", name="file", waker=b.waker)
    f.put(frame("file", 0, old))  # files are never stale
    b.add_source("file", f, False)
    batch = b.next_batch(threading.Event())
    assert batch is not None
    assert sorted((x.source_id, x.index) for x in batch) == [("cam", 2), ("file", 0)]
    assert live.drops["stale"] == 2 and f.drops["stale"] == 0


def test_none_when_all_closed_and_drained_and_ended_reported() -> None:
    b = Batcher(max_batch=4, max_wait_ms=10, stale_after_ms=None)
    a = add(b, "a", 1)
    c = add(b, "c", 0)
    a.close()
    c.close()
    stop = threading.Event()
    batch = b.next_batch(stop)
    assert batch is not None and len(batch) == 1
    assert b.next_batch(stop) is None
    assert sorted(b.ended()) == ["a", "c"]
    assert b.ended() == []


def test_stop_event_returns_none() -> None:
    b = Batcher(max_batch=4, max_wait_ms=10, stale_after_ms=None)
    add(b, "a", 0)
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert b.next_batch(stop) is None
    time.sleep(0.01)


def test_remove_source_and_duplicate_id() -> None:
    b = Batcher(max_batch=4, max_wait_ms=10, stale_after_ms=None)
    add(b, "a", 3)
    with pytest.raises(ValueError, match="already"):
        add(b, "a", 0)
    b.remove_source("a")
    assert b.source_ids == []
    assert b.next_batch(threading.Event()) is None


def test_concurrent_producers_deliver_everything_in_order() -> None:
    b = Batcher(max_batch=5, max_wait_ms=2, stale_after_ms=None)
    bufs = {s: add(b, s, 0, cap=3) for s in ("x", "y")}

    def produce(sid: str) -> None:
        for i in range(200):
            bufs[sid].put(frame(sid, i))
        bufs[sid].close()

    threads = [threading.Thread(target=produce, args=(s,)) for s in bufs]
    for t in threads:
        t.start()
    got: dict[str, list[int]] = {"x": [], "y": []}
    stop = threading.Event()
    while (batch := b.next_batch(stop)) is not None:
        assert 1 <= len(batch) <= 5
        for f in batch:
            got[f.source_id].append(f.index)
    for t in threads:
        t.join()
    assert got == {"x": list(range(200)), "y": list(range(200))}


def test_on_ended_reports_a_source_that_ends_while_the_others_are_silent() -> None:
    b = Batcher(max_batch=4, max_wait_ms=10, stale_after_ms=None)
    gone = add(b, "gone", 0)
    add(b, "silent", 0)
    stop, called = threading.Event(), threading.Event()
    seen: list[str] = []

    def on_ended() -> None:
        seen.extend(b.ended())
        called.set()

    result: list[list[Frame] | None] = []
    t = threading.Thread(target=lambda: result.append(b.next_batch(stop, on_ended=on_ended)))
    t.start()
    try:
        gone.close()
        assert called.wait(10), "on_ended was not called while next_batch waited"
        assert seen == ["gone"] and b.source_ids == ["silent"]
    finally:
        stop.set()
        t.join(10)
    assert result == [None]  # no frame came: next_batch returned only on stop


def test_on_ended_waits_for_a_batch_holding_the_last_frames() -> None:
    b = Batcher(max_batch=4, max_wait_ms=10, stale_after_ms=None)
    last = add(b, "last", 2)
    add(b, "silent", 0)
    last.close()
    calls: list[list[str]] = []
    batch = b.next_batch(threading.Event(), on_ended=lambda: calls.append(b.ended()))
    assert batch is not None and [f.index for f in batch] == [0, 1]
    assert calls == [] and b.ended() == ["last"]  # reported after its frames, not before
