"""Configuration models for event sinks and the metrics/health server."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from framesift.config.sources import Strict


class SinkCommon(Strict):
    """Options every sink has: its own bounded queue and retry policy."""

    name: str | None = None
    queue_size: int = Field(1024, ge=1, le=1_000_000)
    events: list[str] | None = Field(None, description="event types to deliver; None = all")
    max_retries: int = Field(5, ge=0)
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)


class JsonlSinkConfig(SinkCommon):
    """Append events as JSON lines, flushed per event, rotated by size."""

    type: Literal["jsonl"] = "jsonl"
    path: str
    rotate_mb: float | None = Field(100.0, gt=0)
    keep: int = Field(5, ge=1, description="rotated files kept")


class MetricsConfig(Strict):
    """Prometheus ``/metrics`` (and ``/healthz``, ``/status``) HTTP server."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535, description="0 picks a free port")
    control: bool = Field(True, description="serve the live-control API (/sources) on this server")
    token: str | None = Field(
        None,
        min_length=8,
        description="bearer token for the control API (default $FRAMESIFT_CONTROL_TOKEN); required to "
        "bind a non-loopback host with control on",
    )
