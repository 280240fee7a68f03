"""Services beside a running pipeline, started and stopped by its caller: one HTTP server for
``/metrics``, ``/healthz``, ``/status`` and the live-control API (``/sources``), and console progress.
They read the pipeline's typed status (:mod:`framesift.pipeline.status`) and never reach inside it.

    with Pipeline(cfg) as p, Services(p, cfg.metrics) as services:
        print(services.port)
        p.join()
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from framesift.config import MetricsConfig
from framesift.pipeline.status import SourceControl
from framesift.progress import Progress

if TYPE_CHECKING:
    from framesift.metrics import MetricsServer

log = logging.getLogger("framesift.services")


class Services:
    """The metrics server (with the control API when ``metrics.control``) and an optional progress
    display for ``pipeline``. Building it binds the port (a taken port is a ConfigError)."""

    def __init__(
        self, pipeline: SourceControl, metrics: MetricsConfig, *, progress: Progress | None = None
    ) -> None:
        self.server: MetricsServer | None = None
        self.progress = progress
        if metrics.enabled:  # the HTTP server's modules load only when it is on
            from framesift.control import ControlAPI, control_token
            from framesift.metrics import MetricsServer, new_registry

            control = None
            if metrics.control:
                control = ControlAPI(pipeline, token=control_token(metrics.token), host=metrics.host)
            self.server = MetricsServer(
                new_registry(pipeline.status),
                host=metrics.host,
                port=metrics.port,
                healthy=pipeline.healthy,
                status=lambda: pipeline.status().to_dict(),
                control=control,
            )

    @property
    def port(self) -> int | None:
        """The metrics server's port (the one picked when ``metrics.port`` is 0); None when off."""
        return None if self.server is None else self.server.port

    def start(self) -> None:
        if self.server is not None:
            self.server.start()
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
