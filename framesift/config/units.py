"""Durations, sizes and budgets as users write them (``2s``, ``20GB``, ``100/h``)."""

from __future__ import annotations

import re

from framesift.errors import ConfigError

__all__ = ["parse_budget", "parse_duration", "parse_size"]

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
