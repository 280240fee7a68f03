"""Prometheus metrics read from the components' own counters at scrape time (served at ``/metrics``
by the web app, :mod:`framesift.web`).

Nothing on the frame path touches prometheus_client: counters are plain ints kept by sources,
ring buffers and sink workers, and latency goes into a lock-free :class:`LatencyHistogram`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from framesift.log import redact
from framesift.pipeline.status import LatencyHistogram, PipelineStatus, drop_stage

__all__ = ["LatencyHistogram", "PipelineCollector", "new_registry"]

log = logging.getLogger("framesift.metrics")


def _label(value: str) -> str:
    return redact(str(value))


class PipelineCollector(Collector):
    """Builds every ``framesift_*`` metric family from the pipeline's status at scrape time."""

    def __init__(self, status: Callable[[], PipelineStatus]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        snap = self.status()
        decoded = CounterMetricFamily(
            "framesift_frames_decoded", "Frames decoded per source.", labels=["source"]
        )
        dropped = CounterMetricFamily(
            "framesift_frames_dropped",
            "Frames dropped, by source, stage (decode, buffer, batcher) and cause.",
            labels=["source", "stage", "cause"],
        )
        depth = GaugeMetricFamily(
            "framesift_queue_depth", "Frames waiting in a queue.", labels=["source", "stage"]
        )
        fps = GaugeMetricFamily("framesift_decode_fps", "Decoded frames per second.", labels=["source"])
        up = GaugeMetricFamily(
            "framesift_source_up", "1 while the source delivers frames.", labels=["source"]
        )
        reconnects = CounterMetricFamily(
            "framesift_reconnects", "Reconnection attempts per source.", labels=["source"]
        )
        staged = CounterMetricFamily(
            "framesift_frames_processed", "Frames that reached the stage.", labels=["source"]
        )
        for sid, s in snap.sources.items():
            src = _label(sid)
            decoded.add_metric([src], s.frames_decoded)
            staged.add_metric([src], s.frames_staged)
            for cause, n in s.drops.items():
                dropped.add_metric([src, drop_stage(cause), cause], n)
            depth.add_metric([src, "buffer"], s.queue_depth)
            fps.add_metric([src], s.fps)
            up.add_metric([src], 1.0 if s.state == "up" else 0.0)
            reconnects.add_metric([src], s.reconnects)
        yield from (decoded, staged, dropped, depth, fps, up, reconnects)

        backlog = GaugeMetricFamily("framesift_sink_queue_depth", "Events waiting per sink.", labels=["sink"])
        events = CounterMetricFamily(
            "framesift_sink_events",
            "Events per sink by outcome (written, failed, retries, dropped_<cause>).",
            labels=["sink", "outcome"],
        )
        spool = GaugeMetricFamily(
            "framesift_sink_spool_events", "Events waiting in a sink's on-disk spool.", labels=["sink"]
        )
        spool_dropped = CounterMetricFamily(
            "framesift_sink_spool_dropped",
            "Events dropped from a full spool (oldest first).",
            labels=["sink"],
        )
        published = CounterMetricFamily(
            "framesift_sink_published", "Events acknowledged by the endpoint.", labels=["sink"]
        )
        connected = GaugeMetricFamily(
            "framesift_sink_connected", "1 while the sink is connected to its endpoint.", labels=["sink"]
        )
        for name, k in snap.sinks.items():
            sink = _label(name)
            backlog.add_metric([sink], k.backlog)
            for outcome, n in k.counts.items():
                events.add_metric([sink, outcome.replace(":", "_")], n)
            stats = k.stats
            if "spool_backlog" in stats:
                spool.add_metric([sink], stats["spool_backlog"])
            if "spool_dropped" in stats:
                spool_dropped.add_metric([sink], stats["spool_dropped"])
            if "published" in stats or "delivered" in stats:
                published.add_metric([sink], stats.get("published", stats.get("delivered", 0)))
            if "connected" in stats:
                connected.add_metric([sink], float(bool(stats["connected"])))
        yield from (backlog, events, spool, spool_dropped, published, connected)

        hist = HistogramMetricFamily(
            "framesift_latency_seconds",
            "Latency from capture to the stage and to the sinks.",
            labels=["source", "stage"],
        )
        for (sid, stage), h in snap.latency.items():
            hist.add_metric([_label(sid), stage], h.cumulative(), sum_value=h.sum)
        yield hist


def new_registry(status: Callable[[], PipelineStatus]) -> CollectorRegistry:
    """A registry of its own per pipeline (several pipelines in one process never collide)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(status))
    return registry
