"""Sinks' own counters in /metrics and /status: a real MQTT sink spooling while mosquitto is down,
then publishing once it is up (spool events, spool drops, published, connected)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from framesift.config import parse_config
from framesift.samples import ClipInfo
from tests.ops.helpers import wait_for
from tests.serving import served
from tests.test_pipeline import Recorder, get, metric_samples

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed")


def test_mqtt_sink_stats_are_exported(make_clip: Callable[..., ClipInfo], tmp_path: Path) -> None:
    from tests.sinks.conftest import Mosquitto

    clip = make_clip(segments=(25,), width=160, height=120)
    broker = Mosquitto(tmp_path / "broker")  # not started yet: the sink spools
    cfg = parse_config(
        {
            "sources": [
                {"type": "file", "id": "clip", "path": str(clip.path), "realtime": True, "loop": True}
            ],
            "sinks": [
                {
                    "type": "mqtt",
                    "name": "mqtt",
                    "port": broker.port,
                    "client_id": "ops-metrics",
                    "spool_dir": str(tmp_path / "spool"),
                    "spool_max_events": 20,
                    "spool_fsync": False,
                    "reconnect_min_s": 1,
                    "reconnect_max_s": 1,
                    "drain_timeout_s": 2,
                }
            ],
            "metrics": {"port": 0},
        }
    )
    sink = ("sink", "mqtt")
    try:
        with served(cfg, analyzers=[Recorder(emit=True)]) as (p, port):  # one event per frame
            wait_for(lambda: p.status().sinks["mqtt"].stats.get("spool_dropped", 0) > 0, what="spool full")
            m = metric_samples(get(port, "/metrics")[1])
            assert m[("framesift_sink_connected", (sink,))] == 0.0
            assert m[("framesift_sink_spool_events", (sink,))] == 20  # bounded
            assert m[("framesift_sink_spool_dropped_total", (sink,))] > 0
            assert m[("framesift_sink_published_total", (sink,))] == 0
            stats = json.loads(get(port, "/status")[1])["sinks"]["mqtt"]["stats"]
            assert stats["connected"] == 0 and stats["spool_backlog"] == 20 and stats["published"] == 0

            broker.start()
            wait_for(lambda: p.status().sinks["mqtt"].stats.get("published", 0) > 25, 30, "published")
            m = metric_samples(get(port, "/metrics")[1])
            assert m[("framesift_sink_connected", (sink,))] == 1.0
            assert m[("framesift_sink_published_total", (sink,))] > 25
            assert m[("framesift_sink_spool_events", (sink,))] < 20
    finally:
        broker.stop()
