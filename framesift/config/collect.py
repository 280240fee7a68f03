"""Configuration models for smart frame collection: the ``collector`` analyzer and the ``frame_store`` sink."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from framesift.config.sinks import SinkCommon
from framesift.config.sources import Strict
from framesift.errors import ConfigError

__all__ = ["CollectorConfig", "FrameStoreSinkConfig", "parse_budget", "parse_duration", "parse_size"]


class CollectorConfig(Strict):
    """Keep frames worth labelling: novel ones, prompt matches, a periodic baseline — within a budget.

    All times count in stream time (presentation timestamps), so a file processed faster than real
    time keeps the same frames as the same video watched live.
    """

    type: Literal["collector"] = "collector"
    name: str | None = None
    novelty_threshold: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="keep when 1 - max cosine to the memory bank reaches this; None = by embedder "
        "(pixel 0.35, calibrated in bench/collect.py; CLIP 0.15, uncalibrated)",
    )
    bank_size: int = Field(256, ge=1, le=100_000, description="recent kept embeddings remembered per source")
    cross_source: bool = Field(False, description="also dedupe against what other sources kept")
    shared_bank_size: int = Field(1024, ge=1, le=1_000_000, description="size of the cross-source bank")
    prompts: list[str] = Field(default_factory=list, description="positive text prompts (needs CLIP)")
    negatives: list[str] = Field(default_factory=list, description="negative text prompts")
    prompt_mode: Literal["softmax", "margin"] = "softmax"
    prompt_threshold: float | None = Field(
        None, description="softmax: probability of the positives (default 0.5); margin: cosine margin (0.02)"
    )
    logit_scale: float | None = Field(
        None, gt=0, description="softmax temperature; None = the model's own (CLIP: 100)"
    )
    prompt_min_novelty: float = Field(
        0.03, ge=0.0, le=2.0, description="a prompt match is kept only if at least this novel"
    )
    max_per_minute: int | None = Field(None, ge=1, le=1_000_000)
    max_per_hour: int | None = Field(None, ge=1, le=1_000_000)
    max_per_day: int | None = Field(None, ge=1, le=1_000_000)
    min_interval_s: float = Field(0.0, ge=0.0, description="stream seconds between two keeps of a source")
    every_s: float | None = Field(None, gt=0, description="periodic baseline keep every N stream seconds")
    seed_from: str | None = Field(None, description="frame store directory to reload the memory bank from")

    @model_validator(mode="after")
    def _check(self) -> CollectorConfig:
        if self.negatives and not self.prompts:
            raise ValueError("negatives given without prompts: add at least one positive prompt")
        return self

    @property
    def effective_prompt_threshold(self) -> float:
        if self.prompt_threshold is not None:
            return self.prompt_threshold
        return 0.5 if self.prompt_mode == "softmax" else 0.02


class FrameStoreSinkConfig(SinkCommon):
    """Kept frames as image files plus an SQLite index (WAL), with size/age retention."""

    type: Literal["frame_store"] = "frame_store"
    path: str = Field(description="store directory (created)")
    format: Literal["jpeg", "png", "webp"] = "jpeg"
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality")
    png_compression: int = Field(3, ge=0, le=9)
    max_size: str | None = Field(None, description="retention by total size, e.g. '20GB', '500MB'")
    max_age: str | None = Field(None, description="retention by age, e.g. '30d', '12h'")
    fsync: bool = Field(True, description="fsync each image before the rename (crash safety)")
    queue_size: int = Field(64, ge=1, le=100_000, description="kept frames waiting (they carry images)")

    @model_validator(mode="after")
    def _check(self) -> FrameStoreSinkConfig:
        if self.max_size is not None:
            parse_size(self.max_size)
        if self.max_age is not None:
            parse_duration(self.max_age)
        return self


_UNITS_S = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNITS_B = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10,
            "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
_NUM_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*$")


def parse_duration(text: str | float) -> float:
    """``'2s'``, ``'10m'``, ``'1.5h'``, ``'7d'``, ``'250ms'`` or a number of seconds → seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = _NUM_UNIT.match(text)
    if not m or m.group(2).lower() not in _UNITS_S:
        raise ConfigError(f"invalid duration {text!r}: write e.g. 2s, 10m, 1h, 7d")
    return float(m.group(1)) * _UNITS_S[m.group(2).lower()]


def parse_size(text: str | int) -> int:
    """``'500MB'``, ``'20GB'``, ``'1GiB'`` or a number of bytes → bytes."""
    if isinstance(text, int):
        return text
    m = _NUM_UNIT.match(text)
    if not m or m.group(2).lower() not in _UNITS_B:
        raise ConfigError(f"invalid size {text!r}: write e.g. 500MB, 20GB, 1GiB")
    return int(float(m.group(1)) * _UNITS_B[m.group(2).lower()])


_BUDGET = re.compile(r"^\s*(\d+)\s*/\s*(m|min|minute|h|hour|d|day)\s*$", re.IGNORECASE)


def parse_budget(text: str) -> tuple[str, int]:
    """``'100/h'`` → ``('max_per_hour', 100)``; units m|h|d (minute, hour, day)."""
    m = _BUDGET.match(text)
    if not m or int(m.group(1)) < 1:
        raise ConfigError(f"invalid budget {text!r}: write N/m, N/h or N/d (e.g. 100/h), N ≥ 1")
    unit = m.group(2).lower()[0]
    key = {"m": "max_per_minute", "h": "max_per_hour", "d": "max_per_day"}[unit]
    return key, int(m.group(1))
