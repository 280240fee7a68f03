"""SinkWorker: never blocks the caller, retries transient failures, always closes its sink."""

from __future__ import annotations

import threading
import time

from framesift.errors import SinkError
from framesift.events import ErrorEvent, Event
from framesift.sinks.base import Sink, SinkWorker


class SlowSink(Sink):
    name = "slow"

    def __init__(self, delay: float, fail_first: int = 0) -> None:
        self.delay = delay
        self.fail_first = fail_first
        self.written: list[int] = []
        self.closed = threading.Event()

    def write(self, event: Event) -> None:
        time.sleep(self.delay)
        if self.fail_first:
            self.fail_first -= 1
            raise SinkError("endpoint down", sink=self.name)
        self.written.append(event.count)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.closed.set()


def ev(i: int) -> ErrorEvent:
    return ErrorEvent(source="s", stage="test", message="m", count=i)


def test_full_queue_drops_and_counts_without_blocking_the_caller() -> None:
    sink = SlowSink(delay=0.05)
    worker = SinkWorker(sink, queue_size=4)
    worker.start()
    accepted = sum(worker.submit(ev(i)) for i in range(50))
    assert accepted < 50
    assert worker.counts["dropped:queue_full"] == 50 - accepted
    worker.stop(drain=True, timeout=10)
    assert sink.written == sorted(sink.written) and len(sink.written) == accepted
    assert sink.closed.is_set()


class BlockedSink(SlowSink):
    """``write`` blocks until ``release`` is set: the queue stays full for as long as the test wants."""

    def __init__(self) -> None:
        super().__init__(delay=0.0)
        self.release = threading.Event()
        self.entered = threading.Event()

    def write(self, event: Event) -> None:
        self.entered.set()
        self.release.wait(10)
        super().write(event)


def test_stop_with_a_full_queue_past_the_drain_timeout_still_closes_the_sink() -> None:
    sink = BlockedSink()
    worker = SinkWorker(sink, queue_size=8)
    worker.start()
    worker.submit(ev(0))
    assert sink.entered.wait(5)
    assert all(worker.submit(ev(i)) for i in range(1, 9))  # the queue is now full
    threading.Timer(0.5, sink.release.set).start()  # after stop() has given up draining
    worker.stop(drain=True, timeout=0.1)
    assert sink.closed.wait(5), "sink was never closed"
    assert worker.counts["dropped:shutdown"] > 0


def test_transient_failures_are_retried_then_delivered_once() -> None:
    sink = SlowSink(delay=0.0, fail_first=2)
    worker = SinkWorker(sink, retry_initial_s=0.01, retry_max_s=0.02)
    worker.start()
    worker.submit(ev(7))
    worker.stop(drain=True, timeout=5)
    assert sink.written == [7]
    assert worker.counts["retries"] == 2 and worker.counts["written"] == 1


def test_a_sink_without_a_drain_limit_finishes_its_backlog_at_shutdown(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A sink that writes local files (``drain_s = None``, as the scene report's split) is waited
    for at shutdown however long its last writes take; others are cut off after their drain time."""
    import framesift.pipeline.sinks as pipeline_sinks

    monkeypatch.setattr(pipeline_sinks, "SINK_DRAIN_S", 0.2)

    class Patient(SlowSink):
        drain_s = None

    patient, hasty = Patient(delay=0.5), SlowSink(delay=0.5)
    sinks = pipeline_sinks.SinkSet([], [hasty, patient], block=True)
    sinks.start()
    for i in range(5):  # 2.5 s of writing each: past the hasty one's 0.2 s drain and 1 s grace
        sinks.submit(ev(i))
    sinks.stop()
    assert patient.written == [0, 1, 2, 3, 4] and patient.closed.is_set()
    assert len(hasty.written) < 5 and hasty.closed.is_set()
