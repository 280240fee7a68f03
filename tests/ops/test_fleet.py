"""An RTSP fleet on real gst-rtsp-server processes: one stream's server killed, another's frozen
(SIGSTOP), both restarted → every source recovers, the healthy ones never stall, and /status and
/metrics tell the truth all along."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from framesift.config import parse_config
from framesift.pipeline import Pipeline
from tests.ops.helpers import EndMarker
from tests.rtsp_server import RtspServer, gst_rtsp_available, rtsp_servers
from tests.serving import served
from tests.test_pipeline import metric_samples

pytestmark = pytest.mark.skipif(not gst_rtsp_available(), reason="gst-rtsp-server (python3-gi) not installed")

SPEC = "barcode:160x120@10"
HEALTHY = ("c", "d")


@pytest.fixture
def fleet() -> Iterator[list[RtspServer]]:
    with rtsp_servers({"a": SPEC}, {"b": SPEC}, {"c": SPEC, "d": SPEC}) as servers:
        yield servers


def _source(sid: str, url: str) -> dict[str, Any]:
    return {
        "type": "rtsp",
        "id": sid,
        "url": url,
        "open_timeout_s": 2,
        "read_timeout_s": 1,
        "watchdog_s": 2,
        "reconnect": {"initial_s": 0.2, "max_s": 1.0},
        "buffer": {"capacity": 8},
    }


class Progress:
    """Asserts the healthy sources' frame counts increase over every window of ``window_s``."""

    def __init__(self, p: Pipeline, window_s: float = 1.5) -> None:
        self.p, self.window_s = p, window_s
        self.last = {sid: (time.monotonic(), self._count(sid)) for sid in HEALTHY}
        self.checks = 0

    def _count(self, sid: str) -> int:
        return int(self.p.status().sources[sid].frames_staged)

    def check(self) -> None:
        now = time.monotonic()
        for sid in HEALTHY:
            t0, n0 = self.last[sid]
            if now - t0 >= self.window_s:
                n = self._count(sid)
                assert n > n0, f"healthy source {sid} stalled: {n0} → {n} frames in {now - t0:.1f} s"
                self.last[sid] = (now, n)
                self.checks += 1

    def wait(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, (
                f"{what} not reached in {timeout} s: {self.p.status().sources}"
            )
            self.check()
            time.sleep(0.1)
        self.check()


def _scrape(
    http: httpx.Client,
) -> tuple[dict[str, Any], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    status = json.loads(http.get("/status").text)
    samples = metric_samples(http.get("/metrics").text)
    return status, samples


def _label(sid: str) -> tuple[tuple[str, str], ...]:
    return (("source", sid),)


def test_fleet_survives_kill_and_freeze(fleet: list[RtspServer]) -> None:
    srv_a, srv_b, srv_cd = fleet
    urls = {"a": srv_a.url("a"), "b": srv_b.url("b"), "c": srv_cd.url("c"), "d": srv_cd.url("d")}
    cfg = parse_config(
        {
            "sources": [_source(sid, url) for sid, url in urls.items()],
            "stage": {"stale_after_ms": 5000},
            "metrics": {"port": 0},
        }
    )
    with (
        served(cfg, analyzers=[EndMarker()]) as (p, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        deadline = time.monotonic() + 30
        while not all(s.state == "up" and s.frames_staged >= 5 for s in p.status().sources.values()):
            assert time.monotonic() < deadline, p.status().sources
            time.sleep(0.1)
        prog = Progress(p)

        srv_a.kill()  # a crash: no RTSP teardown
        srv_b.pause()  # a frozen server: sockets open, nothing sent

        def down(sid: str) -> bool:
            s = p.status().to_dict()["sources"][sid]
            return s["state"] != "up" and s["reconnects"] >= 1

        prog.wait(lambda: down("a") and down("b"), 20, "a and b seen down")
        status, samples = _scrape(http)
        for sid in ("a", "b"):
            s = status["sources"][sid]
            assert s["state"] in ("disconnected", "reconnecting", "connecting", "stalled")
            assert samples[("framesift_source_up", _label(sid))] == 0.0
            assert samples[("framesift_reconnects_total", _label(sid))] >= 1
            assert s["reconnects"] >= 1
            assert s["last_frame_age_s"] is not None and s["last_frame_age_s"] > 0.5
        for sid in HEALTHY:
            assert status["sources"][sid]["state"] == "up"
            assert samples[("framesift_source_up", _label(sid))] == 1.0
            assert status["sources"][sid]["last_frame_age_s"] < 1.0
        assert http.get("/healthz").status_code == 200  # the pipeline itself is alive

        srv_a.restart()
        srv_b.restart()  # the frozen process is killed and a fresh one serves the mount
        counts = {sid: p.status().sources[sid].frames_staged for sid in ("a", "b")}
        prog.wait(
            lambda: all(
                p.status().sources[sid].state == "up"
                and p.status().sources[sid].frames_staged >= counts[sid] + 10
                for sid in ("a", "b")
            ),
            30,
            "a and b recovered",
        )
        status, samples = _scrape(http)
        for sid in urls:
            s = status["sources"][sid]
            assert s["state"] == "up", (sid, s)
            assert samples[("framesift_source_up", _label(sid))] == 1.0
            # metrics and /status report the same counters
            assert samples[("framesift_reconnects_total", _label(sid))] == s["reconnects"]
            for cause, n in s["drops"].items():
                stage = {"stale": "batcher", "decode_error": "decode", "engine_error": "engine"}.get(
                    cause, "buffer"
                )
                key = (
                    "framesift_frames_dropped_total",
                    (("cause", cause), ("source", sid), ("stage", stage)),
                )
                assert samples[key] >= n  # scraped a moment later: counters only grow
        for sid in HEALTHY:
            assert status["sources"][sid]["reconnects"] == 0
        assert prog.checks >= 4
    states = {sid: run.state for sid, run in p.sources.runs.items()}
    assert set(states.values()) == {"stopped"}
