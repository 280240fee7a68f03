"""Health of one inference engine in a running pipeline: consecutive failures and an exponential
backoff before it is called again, so a broken engine (CUDA error, runtime crash) never spins."""

from __future__ import annotations

import time

from framesift.pipeline.status import EngineInfo


class EngineHealth:
    """Failures of the engine ``name``; after the n-th in a row it rests ``first_s * 2**(n-1)``
    seconds (at most ``longest_s``). Single-threaded: the stage thread owns it."""

    def __init__(self, name: str, backoff_s: tuple[float, float]) -> None:
        self.name = name
        self.first_s, self.longest_s = backoff_s
        self.failures = 0  # consecutive
        self.errors = 0  # in all
        self.broken = False
        self.retry_at = 0.0  # monotonic

    def resting(self) -> bool:
        """Broken and still inside its backoff: do not call the engine."""
        return self.broken and time.monotonic() < self.retry_at

    def failed(self) -> float:
        """Count a failure; returns the backoff (seconds) before the next try."""
        self.failures += 1
        self.errors += 1
        delay = min(self.longest_s, self.first_s * 2 ** (self.failures - 1))
        self.broken = True
        self.retry_at = time.monotonic() + delay
        return delay

    def succeeded(self) -> bool:
        """Reset after a call that worked; True when the engine had been failing (it recovered)."""
        recovered = self.broken or self.failures > 0
        self.broken = False
        self.failures = 0
        return recovered

    def info(self, name: str | None) -> EngineInfo:
        """Its status, under ``name`` (the engine's current name)."""
        return EngineInfo(
            name=name,
            state="backoff" if self.broken else "ok",
            errors=self.errors,
            consecutive_failures=self.failures,
        )
