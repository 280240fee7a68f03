"""The live-control API: add, list and remove sources of a running pipeline over HTTP.

Served next to ``/metrics`` by :class:`framesift.metrics.MetricsServer`:

* ``GET /sources`` → ``{"sources": {id: status}}``
* ``POST /sources`` with one source config as JSON (the same model as a ``sources:`` entry of the
  YAML config) → 201 ``{"id": ..., "status": ...}``; 400 ``{"error": "<one line>"}`` when invalid,
  409 when the id is taken
* ``DELETE /sources/<id>`` → stops its capture, lets the stage drain its frames and its analyzers'
  ``on_end`` events, waits until the sinks have delivered them, then answers 200 with its last status
  (404 for an unknown id)

An optional bearer token (``metrics.token`` or ``$FRAMESIFT_CONTROL_TOKEN``) is required in
``Authorization: Bearer <token>``; without one the server refuses to bind a non-loopback address.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
from dataclasses import asdict
from typing import Any
from urllib.parse import unquote

from pydantic import TypeAdapter, ValidationError

from framesift.config import SourceConfig, format_validation_error
from framesift.errors import ConfigError, FramesiftError
from framesift.log import redact, register_secret
from framesift.pipeline.status import SourceControl

log = logging.getLogger("framesift.control")

TOKEN_ENV = "FRAMESIFT_CONTROL_TOKEN"
_SOURCE_ADAPTER: TypeAdapter[Any] = TypeAdapter(list[SourceConfig])  # a list: error paths lose the tag

Response = tuple[int, dict[str, Any], dict[str, str]]


def control_token(configured: str | None) -> str | None:
    """The configured token, else ``$FRAMESIFT_CONTROL_TOKEN`` (empty = none); registered as a secret."""
    token = configured or os.environ.get(TOKEN_ENV) or None
    register_secret(token)
    return token


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_source(data: Any) -> Any:
    """Validate one source config (a mapping); raises ConfigError with a one-line message."""
    if not isinstance(data, dict):
        raise ConfigError('source: expected a JSON object such as {"type": "rtsp", "url": "rtsp://..."}')
    try:
        return _SOURCE_ADAPTER.validate_python([data])[0]
    except ValidationError as err:
        lines = format_validation_error(err, "source").splitlines()
        lines = [ln.replace("source: 0.", "source: ", 1).replace("source: 0:", "source:", 1) for ln in lines]
        raise ConfigError("; ".join(lines)) from None


class ControlAPI:
    """Request handling for ``/sources`` (transport-free: the HTTP server calls :meth:`handle`)."""

    MAX_BODY = 64 * 1024

    def __init__(self, pipeline: SourceControl, *, token: str | None = None, host: str = "127.0.0.1") -> None:
        self.pipeline = pipeline
        self.token = token
        self.check_bind(host)

    def check_bind(self, host: str) -> None:
        """Refuse a non-loopback address without a token (ConfigError)."""
        if not self.token and not is_loopback(host):
            raise ConfigError(
                f"metrics.host {host!r} is not a loopback address and the live-control API has no token: "
                f"set metrics.token (or ${TOKEN_ENV}), or metrics.control: false, or bind 127.0.0.1"
            )

    @staticmethod
    def handles(path: str) -> bool:
        return path == "/sources" or path.startswith("/sources/")

    def _authorized(self, authorization: str | None) -> bool:
        if not self.token:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    def handle(self, method: str, path: str, authorization: str | None, body: bytes) -> Response:
        """(status code, JSON document, extra headers) for one request."""
        if not self._authorized(authorization):
            return 401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"}
        try:
            if path == "/sources":
                if method == "GET":
                    return 200, {"sources": self._sources()}, {}
                if method == "POST":
                    return self._add(body)
            elif method == "DELETE":
                return self._remove(unquote(path[len("/sources/") :]))
            elif method == "GET":
                sid = unquote(path[len("/sources/") :])
                info = self._sources().get(sid)
                if info is None:
                    return 404, {"error": f"no source {sid!r}"}, {}
                return 200, {"id": sid, "status": info}, {}
            return 405, {"error": f"{method} is not allowed on {path}"}, {"Allow": "GET, POST, DELETE"}
        except Exception as exc:  # never kill the server thread; say what failed
            log.warning("control %s %s failed: %s: %s", method, path, type(exc).__name__, redact(str(exc)))
            return 500, {"error": f"{type(exc).__name__}: {redact(str(exc))}"}, {}

    def _add(self, body: bytes) -> Response:
        try:
            data = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return 400, {"error": f"source: body is not JSON ({exc})"}, {}
        try:
            cfg = parse_source(data)
            sid = self.pipeline.add_source(cfg)
        except ConfigError as exc:
            code = 409 if "already in use" in str(exc) else 400
            if "sources can be added only" in str(exc):
                code = 503
            return code, {"error": redact(str(exc))}, {}
        except FramesiftError as exc:
            return 400, {"error": redact(str(exc))}, {}
        info = self._sources().get(sid, {})
        return 201, {"id": sid, "status": info}, {"Location": f"/sources/{sid}"}

    def _remove(self, sid: str) -> Response:
        try:
            info = self.pipeline.remove_source(sid)
        except KeyError:
            return 404, {"error": f"no source {sid!r} (GET /sources lists them)"}, {}
        return 200, {"id": sid, "removed": True, "status": asdict(info)}, {}

    def _sources(self) -> dict[str, Any]:
        return {sid: asdict(info) for sid, info in self.pipeline.status().sources.items()}
