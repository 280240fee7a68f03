"""Services beside a running pipeline, started and stopped by its caller: one HTTP server (an ASGI app
on uvicorn, :mod:`framesift.web`) for ``/metrics``, ``/healthz``, ``/status``, the sources API, the
live feed and the UI, and console progress. They read the pipeline's typed status
(:mod:`framesift.pipeline.status`) and never reach inside it.

    with Pipeline(cfg) as p, Services(p, cfg.metrics) as services:
        print(services.port)
        p.join()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from framesift.config import MetricsConfig
from framesift.errors import ConfigError
from framesift.pipeline.status import SourceControl
from framesift.progress import Progress

if TYPE_CHECKING:
    from framesift.web.server import WebServer

log = logging.getLogger("framesift.services")


class Services:
    """The HTTP server (with the sources API when ``metrics.control``) and an optional progress
    display for ``pipeline``. Building it binds the port (a taken port is a ConfigError).

    Bound beyond loopback without a token, only ``/metrics`` and ``/healthz`` are served (and only
    with ``metrics.control: false``: the sources API refuses to be exposed without a token)."""

    def __init__(
        self,
        pipeline: SourceControl,
        metrics: MetricsConfig,
        *,
        progress: Progress | None = None,
        store_dir: str | Path | None = None,
    ) -> None:
        self.server: WebServer | None = None
        self.progress = progress
        if metrics.enabled:  # the HTTP server's modules load only when it is on
            from prometheus_client import generate_latest

            from framesift.metrics import new_registry
            from framesift.web.app import build_app
            from framesift.web.security import Policy, control_token, is_loopback
            from framesift.web.server import WebServer

            token = control_token(metrics.token)
            exposed = not is_loopback(metrics.host)
            if exposed and not token and metrics.control:
                raise ConfigError(
                    f"metrics.host {metrics.host!r} is not a loopback address and the live-control API has "
                    "no token: set metrics.token (or $FRAMESIFT_CONTROL_TOKEN), or metrics.control: false, "
                    "or bind 127.0.0.1"
                )
            policy = Policy(
                bind_host=metrics.host,
                token=token,
                allowed_hosts=tuple(metrics.allowed_hosts),
                max_body_bytes=metrics.max_body,
            )
            registry = new_registry(pipeline.status)
            bare = exposed and not token  # metrics only
            app = build_app(
                policy,
                metrics=lambda: generate_latest(registry),
                pipeline=None if bare else pipeline,
                control=metrics.control and not bare,
                store_dir=None if bare else store_dir,
            )
            if bare:
                log.warning(
                    "metrics.host %s is not loopback and no token is set: serving /metrics and /healthz only",
                    metrics.host,
                )
            self.server = WebServer(
                app,
                host=metrics.host,
                port=metrics.port,
                read_timeout_s=metrics.read_timeout_s,
                max_connections=metrics.max_connections,
            )
            self._control = metrics.control and not bare
            self._token = bool(token)

    @property
    def port(self) -> int | None:
        """The HTTP server's port (the one picked when ``metrics.port`` is 0); None when off."""
        return None if self.server is None else self.server.port

    def start(self) -> None:
        if self.server is not None:
            self.server.start()
            host, port = self.server.host, self.server.port
            log.info("metrics on http://%s:%d/metrics, UI on http://%s:%d/", host, port, host, port)
            if self._control:
                auth = "bearer token required" if self._token else "no token (loopback only)"
                log.info("live control on http://%s:%d/sources (%s)", host, port, auth)
        if self.progress is not None:
            self.progress.start()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> Services:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
