"""Metrics: histogram arithmetic, exposition over HTTP, port errors, independent registries."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from framesift.config import parse_config
from framesift.errors import ConfigError
from framesift.metrics import LatencyHistogram
from framesift.samples import ClipInfo
from framesift.web.server import WebServer
from tests.serving import served


def test_latency_histogram_cumulative() -> None:
    h = LatencyHistogram((0.01, 0.1, 1.0))
    for v in (0.005, 0.05, 0.05, 5.0):
        h.observe(v)
    assert h.cumulative() == [("0.01", 1.0), ("0.1", 3.0), ("1.0", 3.0), ("+Inf", 4.0)]
    assert h.count == 4 and h.sum == pytest.approx(5.105)


def test_port_in_use_is_a_clear_config_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*metrics.port"):
            WebServer(None, port=port)


def test_metrics_families_and_404(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip(segments=(10,), width=160, height=120)
    cfg = parse_config(
        {"sources": [{"type": "file", "path": str(clip.path), "realtime": True}], "metrics": {"port": 0}}
    )
    with served(cfg) as (p, p_port), served(cfg) as (q, q_port):  # two pipelines, two registries, ports
        assert p_port != q_port
        base = f"http://127.0.0.1:{p_port}"
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {
            "framesift_frames_decoded",
            "framesift_queue_depth",
            "framesift_decode_fps",
            "framesift_source_up",
            "framesift_reconnects",
            "framesift_latency_seconds",
        } <= names
        with pytest.raises(urllib.error.HTTPError) as ei:
            urllib.request.urlopen(base + "/nope", timeout=5)
        assert ei.value.code == 404
        ei.value.close()
        p.join()
        q.join()
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/healthz", timeout=2)  # server gone after stop
    with socket.socket() as s:  # and nothing listens on its port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # client TIME_WAITs may remain
        s.bind(("127.0.0.1", p_port or 0))
