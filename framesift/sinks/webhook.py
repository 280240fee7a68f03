"""Webhook sink (httpx): one JSON event per POST, signed, idempotent, retried by the SinkWorker.

Retry design: the sink never sleeps or loops. A failure that may succeed later (connection error,
timeout, 5xx, 408, 429) raises ``SinkError(transient=True)`` and the :class:`SinkWorker` retries
the same event with exponential backoff and jitter (``max_retries``, ``retry_initial_s``,
``retry_max_s``); other 4xx responses raise ``SinkError(transient=False)``: not retried, counted.
Every network step (connect, send, each read) has a ``timeout_s`` timeout, and the response body is
read only until ``timeout_s`` after the request began (64 KiB at most), so a hanging or dripping
receiver costs about one to two ``timeout_s`` per attempt on the sink's own thread (a receiver that
drips its *headers* is bounded per read only: httpx has no total timeout for sync clients);
``SinkWorker.submit`` never waits for it (a full queue drops and counts).

Headers on every request:

- ``Idempotency-Key`` / ``X-Framesift-Event-Id``: a stable id of the event (the same on every
  retry and across restarts), so a receiver can drop a retry of a request it already processed;
- ``X-Framesift-Timestamp``: Unix seconds when the request was signed;
- ``X-Framesift-Signature: sha256=<hex>`` (with ``hmac_secret``): HMAC-SHA256 over
  ``<timestamp>.<body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from framesift.config.sinks import SinkSpec
from framesift.config.sources import NetURL
from framesift.errors import SinkError
from framesift.events import Event
from framesift.log import (
    mask_url_path,
    protect_logger,
    redact,
    redact_obj,
    register_secret,
    register_url_path_secret,
)
from framesift.sinks.base import Sink

if TYPE_CHECKING:  # httpx (the webhook extra) is imported when the sink opens
    import httpx

log = logging.getLogger("framesift.sinks.webhook")

SIGNATURE_HEADER = "X-Framesift-Signature"
TIMESTAMP_HEADER = "X-Framesift-Timestamp"
EVENT_ID_HEADER = "X-Framesift-Event-Id"
RETRY_STATUS = frozenset({408, 425, 429})
MAX_BODY = 64 * 1024  # response bytes read (and thrown away) at most


class WebhookSinkConfig(SinkSpec):
    """POST each event as JSON to ``url``; transient failures are retried by the sink worker."""

    type: Literal["webhook"] = "webhook"
    implementation: ClassVar[str] = "WebhookSink"
    extra: ClassVar[str | None] = "webhook"

    url: NetURL = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    hmac_secret: str | None = Field(None, description="sign bodies with HMAC-SHA256; use ${ENV_VAR}")
    timeout_s: float = Field(
        5.0,
        gt=0,
        description="connect/send/read timeout of every request; the body is read this long at most",
    )
    verify_tls: bool | str = Field(True, description="false, true or a CA bundle path")
    user_agent: str = "framesift-webhook/1"


def event_body(event: Event) -> bytes:
    """The exact bytes POSTed for ``event``: compact JSON, credentials redacted."""
    return json.dumps(redact_obj(event.to_dict()), separators=(",", ":"), default=str).encode()


def event_id(body: bytes) -> str:
    """A stable id for an event body: the first 32 hex digits of its SHA-256."""
    return hashlib.sha256(body).hexdigest()[:32]


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of ``<timestamp>.<body>`` (what receivers recompute)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: str | bytes, timestamp: str, body: bytes, signature: str, *, max_age_s: float = 300.0
) -> bool:
    """Receiver-side check: the signature matches and the timestamp is recent."""
    try:
        if abs(time.time() - float(timestamp)) > max_age_s:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _drain(resp: httpx.Response, deadline: float) -> None:
    """Read the (unused) response body so the connection can be reused, but only until ``deadline``
    and ``MAX_BODY`` bytes: a receiver that drips its body never holds the sink much past one
    timeout. The status is already known, so a failure here does not fail the delivery; leaving
    early closes the connection instead of returning it to the pool."""
    import httpx

    n = 0
    try:
        for chunk in resp.iter_raw():
            n += len(chunk)
            if n > MAX_BODY or time.monotonic() > deadline:
                return
    except httpx.HTTPError:
        return


class WebhookSink(Sink):
    """POSTs events as JSON; see the module docstring for retries and headers."""

    def __init__(self, cfg: WebhookSinkConfig) -> None:
        self.cfg = cfg
        self.url = cfg.url
        register_url_path_secret(cfg.url)  # Slack-style hooks carry their key in the path
        self.safe_url = mask_url_path(cfg.url)
        self.name = cfg.name or f"webhook:{self.safe_url}"
        self.stats: dict[str, int] = {
            "delivered": 0,
            "rejected": 0,
            "transient_errors": 0,
            "timeouts": 0,
            "last_status": 0,
        }
        self._client: httpx.Client | None = None
        self.last_error: str | None = None

    @classmethod
    def from_config(cls, cfg: WebhookSinkConfig) -> WebhookSink:
        cfg.require("httpx")
        register_secret(cfg.hmac_secret)
        for key, value in cfg.headers.items():
            if key.lower() in ("authorization", "x-api-key", "api-key", "x-auth-token", "cookie"):
                register_secret(value)
        return cls(cfg)

    def open(self) -> None:
        import httpx

        protect_logger("httpx")  # httpx logs request URLs at INFO; ours may carry a token
        headers = {"User-Agent": self.cfg.user_agent, "Content-Type": "application/json"}
        headers.update(self.cfg.headers)
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.cfg.timeout_s),
            verify=self.cfg.verify_tls,
            headers=headers,
            follow_redirects=False,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _fail(self, message: str, *, transient: bool) -> SinkError:
        self.last_error = message
        return SinkError(message, sink=self.name, transient=transient)  # the worker logs our name

    def write(self, event: Event) -> None:
        import httpx

        if self._client is None:
            raise self._fail("not open", transient=False)
        body = event_body(event)
        eid = event_id(body)
        ts = str(int(time.time()))
        headers = {"Idempotency-Key": eid, EVENT_ID_HEADER: eid, TIMESTAMP_HEADER: ts}
        if self.cfg.hmac_secret:
            headers[SIGNATURE_HEADER] = sign(self.cfg.hmac_secret, ts, body)
        deadline = time.monotonic() + self.cfg.timeout_s
        try:
            with self._client.stream("POST", self.url, content=body, headers=headers) as resp:
                code = resp.status_code
                _drain(resp, deadline)
        except httpx.TimeoutException as exc:
            self.stats["timeouts"] += 1
            self.stats["transient_errors"] += 1
            raise self._fail(
                f"timed out after {self.cfg.timeout_s}s ({type(exc).__name__})", transient=True
            ) from None
        except httpx.HTTPError as exc:
            self.stats["transient_errors"] += 1
            raise self._fail(
                f"request failed ({type(exc).__name__}: {redact(str(exc))})", transient=True
            ) from None
        self.stats["last_status"] = code
        if 200 <= code < 300:
            self.stats["delivered"] += 1
            return
        if code >= 500 or code in RETRY_STATUS:
            self.stats["transient_errors"] += 1
            raise self._fail(f"receiver answered HTTP {code}; will retry", transient=True)
        self.stats["rejected"] += 1
        raise self._fail(f"receiver rejected the event with HTTP {code}; not retried", transient=False)
