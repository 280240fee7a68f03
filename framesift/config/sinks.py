"""The base of sink configs (each sink's bounded queue and retry policy), and the metrics server."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from framesift.config.base import PluginSpec, Strict
from framesift.events import event_classes

__all__ = ["MetricsConfig", "SinkSpec"]


class SinkSpec(PluginSpec):
    """Options every sink has: its own bounded queue and retry policy.

    The implementation is a :class:`framesift.sinks.base.Sink` class with ``from_config(cfg)``.
    ``on_full``: what the sink's queue does when it is full. ``auto`` blocks (waits for the sink)
    when every source is a file read as fast as it decodes, so nothing is lost, and drops the newest
    event otherwise (a camera, a file replayed in real time), so a slow sink never holds back capture.
    """

    kind: ClassVar[str] = "sink"
    #: it writes images that travel only in process (frames, kept-frame payloads): not in a fleet
    needs_frames: ClassVar[bool] = False

    name: str | None = None
    queue_size: int = Field(1024, ge=1, le=1_000_000)
    on_full: Literal["auto", "drop", "block"] = "auto"
    events: list[str] | None = Field(None, description="event types to deliver; None = all")
    max_retries: int = Field(5, ge=0)
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)

    @field_validator("events")
    @classmethod
    def _known_events(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            try:
                event_classes(names)
            except ValueError as exc:  # one line naming the allowed types, without pydantic's prefix
                raise PydanticCustomError("unknown_event_type", "{problem}", {"problem": str(exc)}) from None
        return names


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
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the server answers besides 127.0.0.1, localhost, [::1] and the bind "
        "address (DNS-rebinding guard); add the LAN name or address users type in the browser",
    )
    read_timeout_s: float = Field(
        10.0, gt=0, description="a connection must send a whole request in this time"
    )
    max_connections: int = Field(
        100, ge=1, description="open connections at most; more are closed on arrival"
    )
    max_body: int = Field(1024 * 1024, ge=1024, description="request body bytes at most (413 beyond)")
