"""A pipeline with its services (metrics, status, live control), as the CLI runs it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from framesift.config import PipelineConfig
from framesift.pipeline import Pipeline
from framesift.services import Services


@contextlib.contextmanager
def served(cfg: PipelineConfig, **kwargs: Any) -> Iterator[tuple[Pipeline, int]]:
    """``Pipeline(cfg, **kwargs)`` started, with its HTTP server; yields (pipeline, port)."""
    with Pipeline(cfg, **kwargs) as p, Services(p, cfg.metrics) as services:
        assert services.port is not None
        yield p, services.port
