"""Prometheus metrics read from the components' own counters at scrape time, and the HTTP server
that serves ``/metrics``, ``/healthz``, ``/status`` and (when given) the live-control API
(``/sources``, see :mod:`framesift.control`).

Nothing on the frame path touches prometheus_client: counters are plain ints kept by sources,
ring buffers and sink workers, and latency goes into a lock-free :class:`LatencyHistogram`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from framesift.errors import ConfigError
from framesift.log import redact, redact_obj
from framesift.pipeline.status import LatencyHistogram, PipelineStatus, drop_stage

if TYPE_CHECKING:
    from framesift.control import ControlAPI

__all__ = ["LatencyHistogram", "MetricsServer", "PipelineCollector", "new_registry"]

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


class MetricsServer:
    """A stdlib HTTP server on its own thread: ``/metrics``, ``/healthz``, ``/status``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        healthy: Callable[[], bool],
        status: Callable[[], dict[str, Any]],
        control: ControlAPI | None = None,
    ) -> None:
        if control is not None:
            control.check_bind(host)
        handler = _make_handler(registry, healthy, status, control)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics server cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(choose another metrics.port, 0 for a free one, or set metrics.enabled: false)"
            ) from None
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self.control = control
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="metrics-http", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        if self.control is not None:
            auth = "bearer token required" if self.control.token else "no token (loopback only)"
            log.info("live control on http://%s:%d/sources (%s)", self.host, self.port, auth)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()


def _make_handler(
    registry: CollectorRegistry,
    healthy: Callable[[], bool],
    status: Callable[[], dict[str, Any]],
    control: ControlAPI | None = None,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "framesift"

        def _control(self, method: str) -> bool:
            """Serve a control request; False when the path is not the control API's."""
            path = self.path.split("?", 1)[0]
            if control is None or not control.handles(path):
                return False
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > control.MAX_BODY:
                msg = b'{"error": "request body too large or invalid Content-Length"}\n'
                self._send(413, msg, "application/json")
                return True
            body = self.rfile.read(length) if length else b""
            code, doc, extra = control.handle(method, path, self.headers.get("Authorization"), body)
            self._send(code, (json.dumps(redact_obj(doc)) + "\n").encode(), "application/json", extra)
            return True

        def do_POST(self) -> None:
            if not self._control("POST"):
                self._send(405, b"method not allowed\n", "text/plain")

        def do_DELETE(self) -> None:
            if not self._control("DELETE"):
                self._send(405, b"method not allowed\n", "text/plain")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if self._control("GET"):
                    return
                if path == "/metrics":
                    self._send(200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    ok = healthy()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"stopped\n", "text/plain")
                elif path == "/status":
                    body = json.dumps(redact_obj(status()), default=str).encode()
                    self._send(200, body, "application/json")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /status\n", "text/plain")
            except Exception as exc:  # never kill the server thread
                log.warning("metrics request %s failed: %s", path, exc)
                self._send(500, f"error: {exc}\n".encode(), "text/plain")

        def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    return Handler


def new_registry(status: Callable[[], PipelineStatus]) -> CollectorRegistry:
    """A registry of its own per pipeline (several pipelines in one process never collide)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(status))
    return registry
