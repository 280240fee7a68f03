"""The pipeline on a real RTSP server (gst-rtsp-server on 127.0.0.1): a broken source beside a healthy
one, stale live frames dropped and counted, status events and metrics for both."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.rtsp_server import RtspServer, gst_rtsp_available
from tests.serving import served
from tests.test_pipeline import ListSink, Recorder, config, get, metric_samples

pytestmark = pytest.mark.skipif(not gst_rtsp_available(), reason="gst-rtsp-server (python3-gi) not installed")


@pytest.fixture
def server() -> Iterator[RtspServer]:
    with RtspServer({"cam": "barcode:160x120@25"}) as srv:
        yield srv


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_broken_live_source_does_not_affect_a_healthy_one(server: RtspServer) -> None:
    rec, sink = Recorder(), ListSink()
    cfg = config(
        {"type": "rtsp", "id": "cam", "url": server.url("cam")},
        {
            "type": "rtsp",
            "id": "dead",
            "url": "rtsp://127.0.0.1:1/x",
            "reconnect": {"initial_s": 0.1, "max_s": 0.2},
        },
    )
    with served(cfg, analyzers=[rec], sinks=[sink]) as (p, port):
        wait_for(lambda: len(rec.seen.get("cam", [])) >= 20)
        wait_for(lambda: p.status().sources["dead"].reconnects >= 2)
        samples = metric_samples(get(port, "/metrics")[1])
        assert samples[("framesift_source_up", (("source", "cam"),))] == 1.0
        assert samples[("framesift_source_up", (("source", "dead"),))] == 0.0
        assert samples[("framesift_reconnects_total", (("source", "dead"),))] >= 2
    got = rec.seen["cam"]
    assert got == sorted(got) and len(set(got)) == len(got)  # in order, no duplicates
    states = {(e["source"], e["state"]) for e in sink.events}
    assert {("cam", "up"), ("dead", "reconnecting"), ("cam", "stopped"), ("dead", "stopped")} <= states
    assert "dead" not in rec.seen


def test_stale_live_frames_are_dropped_and_counted(server: RtspServer) -> None:
    rec = Recorder(hold=True)
    cfg = config(
        {"type": "rtsp", "id": "cam", "url": server.url("cam"), "buffer": {"capacity": 100}},
        stage={"stale_after_ms": 200},
    )
    with served(cfg, analyzers=[rec]) as (p, port):
        assert rec.holding.wait(20)
        wait_for(lambda: len(p.sources.runs["cam"].buffer) >= 15)  # frames queue up behind the held stage
        time.sleep(0.4)  # ... and are all older than stale_after_ms (capacity 100: none evicted)
        rec.release.set()
        wait_for(lambda: p.sources.runs["cam"].buffer.drops["stale"] > 0)
        samples = metric_samples(get(port, "/metrics")[1])
        key = (
            "framesift_frames_dropped_total",
            (("cause", "stale"), ("source", "cam"), ("stage", "batcher")),
        )
        assert samples[key] >= 1
    got = rec.seen["cam"]
    assert got == sorted(got)
