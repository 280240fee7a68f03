"""The frame store on disk: ``<root>/<source>/<YYYY-MM-DD>/<id>.<ext>`` plus ``<root>/index.sqlite``.

Crash safety. Every image is written under ``<name>.tmp``, fsync'ed, then renamed. The index row
is inserted *before* the file as ``pending`` and marked ``ok`` after the rename; deletions mark rows
``deleting`` before unlinking. Opening a store (writable) finishes or undoes whatever a crash
interrupted, so index and files always agree and no half-written image survives.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framesift.errors import ConfigError, SinkError

log = logging.getLogger("framesift.store")

INDEX_NAME = "index.sqlite"
SCHEMA_VERSION = 1
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}
PENDING, OK, DELETING = 0, 1, 2

_SCHEMA = """
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

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


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


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


class FrameStore:
    """Kept frames on disk with an SQLite (WAL) index. Thread-safe (one internal lock).

    ``max_bytes`` / ``max_age_s`` enable retention: oldest frames (by capture time) go first, index
    row and file together.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        format: str = "jpeg",
        quality: int = 90,
        png_compression: int = 3,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        fsync: bool = True,
        readonly: bool = False,
    ) -> None:
        if format not in EXTENSIONS:
            raise ConfigError(f"frame store format must be one of {sorted(EXTENSIONS)}, got {format!r}")
        self.root = Path(root)
        self.format = format
        self.quality = quality
        self.png_compression = png_compression
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.fsync = fsync
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._total_bytes = 0
        self._last_age_check = 0.0
        self.removed = 0  # frames removed by retention

    # ---------------------------------------------------------------- lifecycle
    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def open(self) -> FrameStore:
        """Create or open the store; a writable open recovers from an interrupted write first."""
        with self._lock:
            if self._db is not None:
                return self
            if self.readonly:
                if not self.index_path.is_file():
                    raise ConfigError(
                        f"{self.root}: not a frame store (no {INDEX_NAME}); "
                        "collect frames first with `framesift collect ... -o DIR`"
                    )
                uri = f"file:{self.index_path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            else:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                    self._db = sqlite3.connect(str(self.index_path), check_same_thread=False, timeout=30)
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._db.execute("PRAGMA synchronous=NORMAL")
                    self._db.executescript(_SCHEMA)
                    self._db.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                    )
                    self._db.commit()
                except (OSError, sqlite3.Error) as exc:
                    self._db = None
                    raise SinkError(
                        f"frame store {self.root}: cannot open index ({exc})", transient=False
                    ) from None
                self.recover()
            self._total_bytes = int(
                self._db.execute(
                    "SELECT COALESCE(SUM(bytes), 0) FROM frames WHERE status=?", (OK,)
                ).fetchone()[0]
            )
            return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                finally:
                    self._db = None

    def __enter__(self) -> FrameStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    # ---------------------------------------------------------------- recovery
    def recover(self) -> int:
        """Undo writes and finish deletions a crash interrupted; returns the rows repaired."""
        with self._lock:
            rows = self.db.execute(
                "SELECT id, path, status FROM frames WHERE status IN (?, ?)", (PENDING, DELETING)
            ).fetchall()
            for _id, rel, _status in rows:
                final = self.root / rel
                for p in (final, final.with_name(final.name + ".tmp")):
                    p.unlink(missing_ok=True)
            if rows:
                self.db.executemany("DELETE FROM frames WHERE id=?", [(r[0],) for r in rows])
                self.db.commit()
                log.info("frame store %s: repaired %d interrupted write(s)/deletion(s)", self.root, len(rows))
            return len(rows)

    # ---------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
            self.db.commit()

    # ---------------------------------------------------------------- writing
    def encode(self, image: np.ndarray) -> bytes:
        """RGB (or grey) uint8 → encoded bytes in the store's format (a CUDA tensor is copied to host)."""
        if not isinstance(image, np.ndarray) and hasattr(image, "cpu"):
            image = image.cpu().numpy()
        img = np.ascontiguousarray(image)
        if img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        if self.format == "jpeg":
            params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        elif self.format == "webp":
            params = [cv2.IMWRITE_WEBP_QUALITY, self.quality]
        else:
            params = [cv2.IMWRITE_PNG_COMPRESSION, self.png_compression]
        ok, buf = cv2.imencode(EXTENSIONS[self.format], img, params)
        if not ok:
            raise SinkError(f"frame store {self.root}: cannot encode a {img.shape} image as {self.format}")
        return bytes(buf)

    def relative_path(self, source: str, wallclock: float, frame_id: str) -> str:
        day = datetime.fromtimestamp(wallclock, tz=timezone.utc).strftime("%Y-%m-%d")
        return f"{_SAFE.sub('_', source)}/{day}/{_SAFE.sub('_', frame_id)}{EXTENSIONS[self.format]}"

    def add(
        self,
        *,
        id: str,
        source: str,
        image: np.ndarray,
        wallclock: float,
        pts: int = 0,
        time_base: Fraction = Fraction(1, 1),
        time: float = 0.0,
        frame_index: int = 0,
        reason: str = "",
        scores: dict[str, float] | None = None,
        embedding: np.ndarray | None = None,
        model: str | None = None,
    ) -> StoredFrame:
        """Write one frame (tmp + fsync + rename) and index it; SinkError on failure (disk full...)."""
        if self.readonly:
            raise SinkError(f"frame store {self.root} is open read-only", transient=False)
        data = self.encode(image)
        digest = hashlib.sha256(data).hexdigest()
        rel = self.relative_path(source, wallclock, id)
        final = self.root / rel
        tmp = final.with_name(final.name + ".tmp")
        emb = None if embedding is None else np.asarray(embedding, dtype=np.float16).ravel()
        height, width = int(image.shape[0]), int(image.shape[1])
        scores = {k: float(v) for k, v in (scores or {}).items()}
        row = (
            id, source, float(wallclock), float(time), int(pts), f"{time_base.numerator}/{time_base.denominator}",
            int(frame_index), reason, json.dumps(scores), rel, len(data), digest, width, height, model,
            0 if emb is None else int(emb.size), None if emb is None else emb.tobytes(), PENDING,
        )  # fmt: skip
        with self._lock:
            try:
                self.db.execute(f"INSERT INTO frames VALUES ({','.join('?' * len(row))})", row)
                self.db.commit()
            except sqlite3.IntegrityError:
                raise SinkError(
                    f"frame store {self.root}: duplicate frame id {id!r}", transient=False
                ) from None
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error(exc, "indexing", rel) from None
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "xb") as fh:
                    fh.write(data)
                    fh.flush()
                    if self.fsync:
                        os.fsync(fh.fileno())
                os.replace(tmp, final)
                self.db.execute("UPDATE frames SET status=? WHERE id=?", (OK, id))
                self.db.commit()
            except (OSError, sqlite3.Error) as exc:
                self._undo(id, final, tmp)
                raise self._error(exc, "writing", rel) from None
            self._total_bytes += len(data)
            self._retention_after_write()
        return StoredFrame(
            id, source, float(wallclock), float(time), int(pts), time_base, int(frame_index), reason, scores,
            rel, len(data), digest, width, height, model,
        )  # fmt: skip

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.rollback()

    def _undo(self, frame_id: str, final: Path, tmp: Path) -> None:
        """Best effort after a failed write; what cannot be undone now is repaired at the next open."""
        self._rollback()
        for p in (tmp, final):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        try:
            self.db.execute("DELETE FROM frames WHERE id=?", (frame_id,))
            self.db.commit()
        except sqlite3.Error:
            self._rollback()

    def _error(self, exc: BaseException, what: str, rel: str) -> SinkError:
        if _is_disk_full(exc):
            return SinkError(
                f"frame store {self.root}: disk full while {what} {rel}; free space, or set a lower "
                "max_size retention for the store",
                transient=False,
            )
        return SinkError(f"frame store {self.root}: failed {what} {rel} ({exc})", transient=False)

    # ---------------------------------------------------------------- retention
    @property
    def total_bytes(self) -> int:
        return self._total_bytes

    def _retention_after_write(self) -> None:
        if (self.max_bytes is not None and self._total_bytes > self.max_bytes) or (
            self.max_age_s is not None and time.monotonic() - self._last_age_check > 60.0
        ):
            self.enforce_retention()

    def enforce_retention(self, now: float | None = None) -> int:
        """Remove frames older than ``max_age_s`` and the oldest ones beyond ``max_bytes``."""
        if self.readonly:
            return 0
        now = time.time() if now is None else now
        with self._lock:
            self._last_age_check = time.monotonic()
            victims: list[tuple[str, str, int]] = []
            if self.max_age_s is not None:
                victims += self.db.execute(
                    "SELECT id, path, bytes FROM frames WHERE status=? AND wallclock < ?",
                    (OK, now - self.max_age_s),
                ).fetchall()
            if self.max_bytes is not None:
                excess = self._total_bytes - sum(v[2] for v in victims) - self.max_bytes
                if excess > 0:
                    taken = {v[0] for v in victims}
                    cur = self.db.execute(
                        "SELECT id, path, bytes FROM frames WHERE status=? ORDER BY wallclock, rowid", (OK,)
                    )
                    while excess > 0:
                        batch = cur.fetchmany(256)
                        if not batch:
                            break
                        for v in batch:
                            if v[0] in taken:
                                continue
                            victims.append(v)
                            excess -= v[2]
                            if excess <= 0:
                                break
            if not victims:
                return 0
            return self._delete(victims)

    def _delete(self, victims: list[tuple[str, str, int]]) -> int:
        ids = [(v[0],) for v in victims]
        self.db.executemany(f"UPDATE frames SET status={DELETING} WHERE id=?", ids)
        self.db.commit()
        dirs = set()
        for _id, rel, _n in victims:
            p = self.root / rel
            p.unlink(missing_ok=True)
            dirs.add(p.parent)
        self.db.executemany("DELETE FROM frames WHERE id=?", ids)
        self.db.commit()
        for d in dirs:  # drop emptied date/source folders
            for folder in (d, d.parent):
                try:
                    folder.rmdir()
                except OSError:
                    break
        self._total_bytes -= sum(v[2] for v in victims)
        self.removed += len(victims)
        return len(victims)

    def delete(self, ids: list[str]) -> int:
        """Remove frames by id (files and rows)."""
        with self._lock:
            rows: list[tuple[str, str, int]] = []
            for i in ids:
                rows += self.db.execute(
                    "SELECT id, path, bytes FROM frames WHERE id=? AND status=?", (i, OK)
                ).fetchall()
            return self._delete(rows) if rows else 0

    # ---------------------------------------------------------------- reading
    def count(self, source: str | None = None) -> int:
        with self._lock:
            if source is None:
                return int(self.db.execute("SELECT COUNT(*) FROM frames WHERE status=?", (OK,)).fetchone()[0])
            q = "SELECT COUNT(*) FROM frames WHERE status=? AND source=?"
            return int(self.db.execute(q, (OK, source)).fetchone()[0])

    def sources(self) -> list[str]:
        with self._lock:
            q = "SELECT DISTINCT source FROM frames WHERE status=? ORDER BY source"
            return [r[0] for r in self.db.execute(q, (OK,))]

    def models(self) -> list[str]:
        """Embedding models recorded in the index (most frames first)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT model, COUNT(*) AS n FROM frames WHERE status=? AND model IS NOT NULL "
                "GROUP BY model ORDER BY n DESC",
                (OK,),
            ).fetchall()
            return [r[0] for r in rows]

    _COLS = (
        "id, source, wallclock, time, pts, time_base, frame_index, reason, scores, path, bytes, sha256, "
        "width, height, model"
    )

    @staticmethod
    def _row(r: tuple[Any, ...]) -> StoredFrame:
        num, den = str(r[5]).split("/")
        return StoredFrame(
            r[0], r[1], r[2], r[3], r[4], Fraction(int(num), int(den)), r[6], r[7], json.loads(r[8]), r[9],
            r[10], r[11], r[12], r[13], r[14],
        )  # fmt: skip

    def _where(self, source: str | None, since: float | None, model: str | None) -> tuple[str, list[Any]]:
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

    def records(
        self, *, source: str | None = None, since: float | None = None, model: str | None = None
    ) -> list[StoredFrame]:
        """Index rows, oldest first."""
        where, args = self._where(source, since, model)
        with self._lock:
            rows = self.db.execute(
                f"SELECT {self._COLS} FROM frames WHERE {where} ORDER BY wallclock, rowid", args
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, frame_id: str) -> StoredFrame | None:
        with self._lock:
            r = self.db.execute(
                f"SELECT {self._COLS} FROM frames WHERE id=? AND status=?", (frame_id, OK)
            ).fetchone()
        return None if r is None else self._row(r)

    def iter_embeddings(
        self,
        *,
        model: str | None = None,
        source: str | None = None,
        since: float | None = None,
        chunk: int = 8192,
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Chunks of ``(ids, (n, dim) float32)`` for frames with an embedding, in index order."""
        where, args = self._where(source, since, model)
        q = f"SELECT id, dim, embedding FROM frames WHERE {where} AND embedding IS NOT NULL ORDER BY rowid"
        with self._lock:
            cur = self.db.cursor()
            cur.execute(q, args)
        while True:
            with self._lock:
                rows = cur.fetchmany(chunk)
            if not rows:
                return
            dims = {r[1] for r in rows}
            if len(dims) != 1:
                raise ConfigError(
                    f"{self.root}: embeddings of different sizes {sorted(dims)} in one model group; "
                    "pass --source or rebuild the store"
                )
            mat = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float16).reshape(len(rows), -1)
            yield [r[0] for r in rows], mat.astype(np.float32)

    def recent_embeddings(
        self, limit: int, *, source: str | None = None, model: str | None = None
    ) -> tuple[list[str], np.ndarray]:
        """The ``limit`` most recently kept embeddings (oldest first) — to seed a collector's bank."""
        where, args = self._where(source, None, model)
        with self._lock:
            rows = self.db.execute(
                f"SELECT source, embedding FROM frames WHERE {where} AND embedding IS NOT NULL "
                "ORDER BY wallclock DESC, rowid DESC LIMIT ?",
                [*args, int(limit)],
            ).fetchall()
        rows.reverse()
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        mat = np.stack([np.frombuffer(r[1], dtype=np.float16) for r in rows]).astype(np.float32)
        return [r[0] for r in rows], mat
