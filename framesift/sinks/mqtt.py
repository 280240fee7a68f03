"""MQTT sink (paho-mqtt >= 2): events on ``<prefix>/<source>/<type>``, durable spool, last will.

Delivery design (one path for every event, connected or not):

1. ``write`` appends the event to the on-disk :class:`~framesift.sinks.spool.Spool` (fsync'd), then
   hands the oldest not-yet-sent records to paho, at most ``inflight`` unacknowledged at a time.
2. A record leaves the spool only when its PUBACK arrives (QoS 1; PUBCOMP for QoS 2).
3. When the connection drops, paho keeps the unacknowledged publishes and resends them, in order,
   on reconnect; the rest wait in the spool and follow in order. A process restart republishes
   the spool from its head. So each event is sent once per connection, in order, and retried
   until acknowledged (QoS 1 remains at-least-once on the wire; our side never duplicates).
4. Spool over its bound → the oldest records not yet sent are dropped and counted.

Nothing here blocks on the network: paho's own thread connects (``connect_async`` with a connect
timeout and ``reconnect_delay_set``) and ``publish`` only queues. ``write`` costs one SQLite commit.

Source status events are published retained on ``<prefix>/<source>/status``. The client's presence
is ``<prefix>/_client/<client_id>/online``: ``online`` (retained) on connect, ``offline`` as the
last will and on a clean close.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from framesift.config.base import Strict
from framesift.config.sinks import SinkSpec
from framesift.errors import SinkError
from framesift.events import Event, SourceStatus
from framesift.log import redact, redact_obj, register_secret
from framesift.sinks.base import Sink
from framesift.sinks.spool import Spool

if TYPE_CHECKING:  # paho-mqtt (the mqtt extra) is imported when the sink opens
    import paho.mqtt.client as mqtt

log = logging.getLogger("framesift.sinks.mqtt")

_TOPIC_UNSAFE = re.compile(r"[#+/\s\x00]")


class MqttTlsConfig(Strict):
    """TLS to the broker. With no ``ca_file`` the system trust store is used."""

    enabled: bool = True
    ca_file: str | None = None
    cert_file: str | None = Field(None, description="client certificate (mutual TLS)")
    key_file: str | None = None
    insecure: bool = Field(False, description="skip hostname verification (testing only)")


class MqttSinkConfig(SinkSpec):
    """Publish events to an MQTT broker (QoS 1 by default), spooling to disk while it is away."""

    type: Literal["mqtt"] = "mqtt"
    implementation: ClassVar[str] = "MqttSink"
    extra: ClassVar[str | None] = "mqtt"

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


def topic_segment(text: str) -> str:
    """A single MQTT topic level: credentials redacted, wildcards/separators replaced by ``_``."""
    return _TOPIC_UNSAFE.sub("_", redact(text)) or "_"


def default_spool_dir(client_id: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "framesift" / f"mqtt-{client_id}"


class MqttSink(Sink):
    """Publishes events to MQTT; see the module docstring for delivery semantics."""

    def __init__(self, cfg: MqttSinkConfig) -> None:
        self.cfg = cfg
        self.client_id = cfg.client_id or f"framesift-{topic_segment(socket.gethostname())}"
        self.name = cfg.name or f"mqtt:{cfg.host}:{cfg.port}"
        self.prefix = cfg.topic_prefix.rstrip("/")
        self.presence_topic = f"{self.prefix}/_client/{self.client_id}/online"
        spool_dir = Path(cfg.spool_dir) if cfg.spool_dir else default_spool_dir(self.client_id)
        self.spool = Spool(
            spool_dir,
            max_events=cfg.spool_max_events,
            max_bytes=max(1, int(cfg.spool_max_mb * 1024 * 1024)),
            fsync=cfg.spool_fsync,
            name=self.name,
        )
        self.stats: dict[str, int] = {
            "published": 0,
            "spooled": 0,
            "spool_dropped": 0,
            "spool_backlog": 0,
            "inflight": 0,
            "connected": 0,
            "connects": 0,
            "disconnects": 0,
        }
        self._lock = threading.RLock()
        self._acks: collections.deque[int] = collections.deque()
        self._ack_evt = threading.Event()
        self._inflight: dict[int, int] = {}  # paho mid -> spool id
        self._last_sent = 0  # highest spool id handed to paho
        self._connected = threading.Event()
        self._client: mqtt.Client | None = None
        self._closing = False
        self._drop_warned = -1e9
        self.last_error: str | None = None

    @classmethod
    def from_config(cls, cfg: MqttSinkConfig) -> MqttSink:
        cfg.require("paho.mqtt.client")
        register_secret(cfg.password)
        return cls(cfg)

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        self.spool.name = self.name  # the pipeline may have renamed us
        self.spool.open()
        self._refresh_stats()
        cfg = self.cfg
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=True,
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None and cfg.tls.enabled:
            try:
                client.tls_set(
                    ca_certs=cfg.tls.ca_file,
                    certfile=cfg.tls.cert_file,
                    keyfile=cfg.tls.key_file,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.spool.close()
                raise SinkError(
                    f"{self.name}: cannot load TLS files ({exc}); check tls.ca_file/cert_file/key_file",
                    sink=self.name,
                    transient=False,
                ) from None
            client.tls_insecure_set(cfg.tls.insecure)
        client.will_set(self.presence_topic, b"offline", qos=1, retain=True)
        client.connect_timeout = cfg.connect_timeout_s
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.max_inflight_messages_set(cfg.inflight + 1)  # + the presence message
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        try:
            client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        except (OSError, ValueError) as exc:
            self.spool.close()
            raise SinkError(
                f"{self.name}: bad broker address ({exc})", sink=self.name, transient=False
            ) from None
        self._client = client
        client.loop_start()
        log.info("%s: connecting as %s (spool %s)", self.name, self.client_id, self.spool.path)

    def close(self) -> None:
        client = self._client
        if client is None:
            return
        deadline = time.monotonic() + self.cfg.drain_timeout_s
        while len(self.spool) and self._connected.is_set() and time.monotonic() < deadline:
            self._ack_evt.clear()
            with self._lock:
                self._process_acks()
                self._pump()
            self._ack_evt.wait(0.05)
        self._process_acks()
        if self._connected.is_set():
            info = client.publish(self.presence_topic, b"offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(min(1.0, max(0.1, deadline - time.monotonic())))
        self._closing = True
        client.disconnect()
        client.loop_stop()
        self._client = None
        self._connected.clear()
        left = len(self.spool)
        if left:
            log.warning(
                "%s: %d events left in the spool %s; delivered on next start",
                self.name,
                left,
                self.spool.path,
            )
        self._refresh_stats()
        self.spool.close()

    # -- paho callbacks (network thread): record only, never block --------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            first = not self.last_error or "refused" not in self.last_error
            self.last_error = f"broker refused the connection: {reason}"
            # warn once per outage, not on every retry
            log.log(logging.WARNING if first else logging.DEBUG, "%s: %s", self.name, self.last_error)
            return
        self.last_error = None
        self.stats["connects"] += 1
        self.stats["connected"] = 1
        self._connected.set()
        client.publish(self.presence_topic, b"online", qos=1, retain=True)
        log.info("%s: connected", self.name)
        self._ack_evt.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self.stats["connected"] = 0
        if self._closing:
            log.info("%s: disconnected", self.name)
        elif was:
            self.stats["disconnects"] += 1
            self.last_error = f"disconnected: {reason}"
            log.warning("%s: disconnected (%s); spooling events", self.name, reason)

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self.last_error = "cannot reach the broker"
        log.debug("%s: connection attempt failed", self.name)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._acks.append(mid)
        self._ack_evt.set()

    # -- worker thread -----------------------------------------------------------------------
    def _topic(self, event: Event) -> str:
        kind = "status" if isinstance(event, SourceStatus) else event.type
        return f"{self.prefix}/{topic_segment(event.source)}/{kind}"

    def write(self, event: Event) -> None:
        payload = json.dumps(redact_obj(event.to_dict()), separators=(",", ":"), default=str).encode()
        retain = isinstance(event, SourceStatus) and self.cfg.retain_status
        with self._lock:
            self._process_acks()
            rid, dropped = self.spool.append(
                self._topic(event), payload, self.cfg.qos, retain, keep_upto=self._last_sent
            )
            if dropped:
                self.stats["spool_dropped"] += dropped
                now = time.monotonic()
                if now - self._drop_warned >= 60.0:  # at most one warning a minute
                    self._drop_warned = now
                    log.warning(
                        "%s: spool full (%d events / %.0f MB); dropping the oldest, %d dropped so far",
                        self.name,
                        self.spool.max_events,
                        self.spool.max_bytes / 1048576,
                        self.stats["spool_dropped"],
                    )
            self._pump()
            if rid and rid > self._last_sent:
                self.stats["spooled"] += 1
            self._refresh_stats()

    def flush(self) -> None:
        """Drain the backlog for up to 0.5 s (called when the worker's queue is idle)."""
        deadline = time.monotonic() + 0.5
        while True:
            self._ack_evt.clear()
            with self._lock:
                self._process_acks()
                self._pump()
                pending = self.spool.count_after(self._last_sent) if self._connected.is_set() else 0
                waiting = bool(self._inflight)
                self._refresh_stats()
            if not (pending or waiting) or time.monotonic() >= deadline:
                return
            self._ack_evt.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _process_acks(self) -> None:
        with self._lock:
            done: list[int] = []
            while self._acks:
                rid = self._inflight.pop(self._acks.popleft(), None)
                if rid is not None:
                    done.append(rid)
            if done:
                self.spool.remove(done)
                self.stats["published"] += len(done)

    def _pump(self) -> None:
        """Hand the oldest unsent records to paho, within the in-flight window."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import MQTTErrorCode

        client = self._client
        if client is None or not self._connected.is_set():
            return
        with self._lock:
            room = self.cfg.inflight - len(self._inflight)
            for rec in self.spool.head(room, after=self._last_sent):
                info = client.publish(rec.topic, rec.payload, qos=rec.qos, retain=rec.retain)
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    self.last_error = f"publish failed: {mqtt.error_string(info.rc)}"
                    break
                if rec.qos == 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                    break  # paho does not keep QoS 0 messages: leave it in the spool for later
                self._last_sent = rec.id
                self._inflight[info.mid] = rec.id

    def _refresh_stats(self) -> None:
        self.stats["spool_backlog"] = len(self.spool)
        self.stats["inflight"] = len(self._inflight)
