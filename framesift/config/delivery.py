"""Configuration models for the network delivery sinks: MQTT and webhook.

Secrets (``password``, ``hmac_secret``, header values) belong in the environment: write
``password: ${MQTT_PASSWORD}`` in the YAML. They are registered for redaction when a sink is built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from framesift.config.sinks import SinkCommon
from framesift.config.sources import Strict


class MqttTlsConfig(Strict):
    """TLS to the broker. With no ``ca_file`` the system trust store is used."""

    enabled: bool = True
    ca_file: str | None = None
    cert_file: str | None = Field(None, description="client certificate (mutual TLS)")
    key_file: str | None = None
    insecure: bool = Field(False, description="skip hostname verification (testing only)")


class MqttSinkConfig(SinkCommon):
    """Publish events to an MQTT broker (QoS 1 by default), spooling to disk while it is away."""

    type: Literal["mqtt"] = "mqtt"
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="default framesift-<hostname>; unique per instance",
    )
    username: str | None = None
    password: str | None = Field(None, description="use ${ENV_VAR} in YAML")
    tls: MqttTlsConfig | None = None
    topic_prefix: str = Field("framesift", pattern=r"^[^#+\s]+$")
    qos: Literal[0, 1, 2] = 1
    retain_status: bool = Field(
        True, description="publish source status retained on <prefix>/<source>/status"
    )
    keepalive_s: int = Field(30, ge=5, le=3600)
    connect_timeout_s: float = Field(5.0, gt=0)
    reconnect_min_s: int = Field(1, ge=1)
    reconnect_max_s: int = Field(30, ge=1)
    inflight: int = Field(20, ge=1, le=1000, description="unacknowledged publishes at a time")
    spool_dir: str | None = Field(None, description="default ~/.local/state/framesift/mqtt-<client_id>")
    spool_max_mb: float = Field(100.0, gt=0)
    spool_max_events: int = Field(100_000, ge=1)
    spool_fsync: bool = Field(True, description="fsync every spool write (survives power loss)")
    drain_timeout_s: float = Field(5.0, ge=0, description="on close, wait this long for the spool to drain")

    @model_validator(mode="after")
    def _check(self) -> MqttSinkConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        return self


class WebhookSinkConfig(SinkCommon):
    """POST each event as JSON to ``url``; transient failures are retried by the sink worker."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    hmac_secret: str | None = Field(None, description="sign bodies with HMAC-SHA256; use ${ENV_VAR}")
    timeout_s: float = Field(
        5.0,
        gt=0,
        description="connect/send/read timeout of every request; the body is read this long at most",
    )
    verify_tls: bool | str = Field(True, description="false, true or a CA bundle path")
    user_agent: str = "framesift-webhook/1"
