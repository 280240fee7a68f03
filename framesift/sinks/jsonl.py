"""JSON-lines event sink: streaming append, one event per line, rotated by size, never buffered."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from framesift.config.sinks import SinkSpec
from framesift.errors import SinkError
from framesift.events import Event
from framesift.sinks.base import Sink

_CHUNK = 64 * 1024


class JsonlSinkConfig(SinkSpec):
    """Append events as JSON lines, flushed per event, rotated by size."""

    type: Literal["jsonl"] = "jsonl"
    implementation: ClassVar[str] = "JsonlSink"

    path: str
    rotate_mb: float | None = Field(100.0, gt=0)
    keep: int = Field(5, ge=1, description="rotated files kept")


def _strip_partial_line(path: Path) -> int:
    """Truncate an incomplete last line (a crash mid-write) so the file ends with ``\\n``; new size."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return size
        pos = size
        while pos > 0:
            start = max(0, pos - _CHUNK)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                f.truncate(keep)
                return keep
            pos = start
        f.truncate(0)
        return 0


class JsonlSink(Sink):
    """Appends each event as one JSON object per line (``event.to_dict()``).

    Each line is written whole with one unbuffered write (nothing is held in memory); a failed
    write is rolled back so the file never ends in a partial line, and a partial last line left by
    a crash is removed on open. With ``rotate_mb`` set, a file that would grow past it is renamed
    to ``<path>.1`` (older ones shift to ``.2`` … ``.keep``; the oldest is deleted).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rotate_mb: float | None = 100.0,
        keep: int = 5,
        name: str = "jsonl",
    ) -> None:
        self.path = Path(path)
        self.rotate_bytes = None if rotate_mb is None else max(1, int(rotate_mb * 1024 * 1024))
        self.keep = max(1, keep)
        self.name = name
        self._fd: int | None = None
        self._size = 0
        self.lines = 0
        self.rotations = 0

    @classmethod
    def from_config(cls, cfg: JsonlSinkConfig) -> JsonlSink:
        return cls(cfg.path, rotate_mb=cfg.rotate_mb, keep=cfg.keep, name=cfg.name or "jsonl")

    def _error(self, what: str, exc: OSError) -> SinkError:
        reason = exc.strerror or str(exc)
        return SinkError(f"jsonl sink {self.name!r}: cannot {what} {self.path}: {reason}", sink=self.name)

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = _strip_partial_line(self.path) if self.path.exists() else 0
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._error("open", exc) from exc

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        oldest = self.path.with_name(f"{self.path.name}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = 0
        self.rotations += 1

    def write(self, event: Event) -> None:
        data = (json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        try:
            if self._fd is None:
                self.open()
            if (
                self.rotate_bytes is not None
                and self._size > 0
                and self._size + len(data) > self.rotate_bytes
            ):
                self._rotate()
        except OSError as exc:
            raise self._error("rotate", exc) from exc
        fd = self._fd
        assert fd is not None
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, view[written:])
        except OSError as exc:
            if written:  # roll back the partial line
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
            raise self._error("write to", exc) from exc
        self._size += written
        self.lines += 1

    def flush(self) -> None:
        """Lines are written unbuffered: nothing to push."""

    def close(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.fsync(fd)
        os.close(fd)
