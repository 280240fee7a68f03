"""The index's schema and rows: the ``frames`` table, its statuses, and :class:`StoredFrame`.

A row read back is validated, not trusted: the index is a file anyone can edit, so a value of the
wrong type raises a one-line :class:`~framesift.errors.SourceError` naming the index, never a
``ValueError`` from deep inside a reader.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from framesift.errors import SourceError

INDEX_NAME = "index.sqlite"
SCHEMA_VERSION = 1
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
PENDING, OK, DELETING = 0, 1, 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    wallclock REAL NOT NULL,
    time REAL NOT NULL,
    pts INTEGER NOT NULL,
    time_base TEXT NOT NULL,
    frame_index INTEGER NOT NULL,
    reason TEXT NOT NULL,
    scores TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    model TEXT,
    dim INTEGER NOT NULL DEFAULT 0,
    embedding BLOB,
    status INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS frames_wallclock ON frames(wallclock);
CREATE INDEX IF NOT EXISTS frames_source ON frames(source, wallclock);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

COLUMNS = (
    "id, source, wallclock, time, pts, time_base, frame_index, reason, scores, path, bytes, sha256, "
    "width, height, model"
)


@dataclass(frozen=True)
class StoredFrame:
    """One row of the index (``path`` is relative to the store root)."""

    id: str
    source: str
    wallclock: float
    time: float
    pts: int
    time_base: Fraction
    frame_index: int
    reason: str
    scores: dict[str, float]
    path: str
    bytes: int
    sha256: str
    width: int
    height: int
    model: str | None


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected text, got {type(v).__name__}")
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {type(v).__name__}")
    return v


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _scores(v: Any) -> dict[str, float]:
    raw = json.loads(_text(v))
    if not isinstance(raw, dict):
        raise TypeError("scores are not a JSON object")
    return {str(k): _float(x) for k, x in raw.items()}


def _time_base(v: Any) -> Fraction:
    num, den = _text(v).split("/")
    return Fraction(int(num), int(den))


def frame_from_row(r: tuple[Any, ...], index: Path) -> StoredFrame:
    """A ``SELECT {COLUMNS}`` row → StoredFrame; SourceError naming ``index`` if a value is malformed."""
    try:
        frame = StoredFrame(
            _text(r[0]), _text(r[1]), _float(r[2]), _float(r[3]), _int(r[4]), _time_base(r[5]), _int(r[6]),
            _text(r[7]), _scores(r[8]), _text(r[9]), _int(r[10]), _text(r[11]), _int(r[12]), _int(r[13]),
            None if r[14] is None else _text(r[14]),
        )  # fmt: skip
        if not (math.isfinite(frame.wallclock) and math.isfinite(frame.time)):
            raise ValueError("capture time is not a finite number")
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise SourceError(
            f"{index}: frame {str(r[0])[:80]!r} has a malformed row ({exc}); the index is damaged or was "
            "not written by framesift: move it aside and collect again, or restore it from a backup",
            source=str(index),
        ) from None
    return frame


def where(source: str | None, since: float | None, model: str | None) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (stored frames only) and its arguments for the common filters."""
    clauses: list[str] = ["status=?"]
    args: list[Any] = [OK]
    if source is not None:
        clauses.append("source=?")
        args.append(source)
    if since is not None:
        clauses.append("wallclock>=?")
        args.append(since)
    if model is not None:
        clauses.append("model=?")
        args.append(model)
    return " AND ".join(clauses), args
