"""The frame store on disk: ``<root>/<source>/<YYYY-MM-DD>/<id>.<ext>`` plus ``<root>/index.sqlite``.

:class:`FrameStore` writes and reads kept frames. Around it: the schema and rows
(:mod:`~framesift.store.schema`), opening the index and its errors
(:mod:`~framesift.store.connection`), paths and the inside-the-store rule
(:mod:`~framesift.store.paths`), crash recovery (:mod:`~framesift.store.recovery`) and retention
(:mod:`~framesift.store.retention`).

Crash safety. Every image is written under ``<name>.tmp``, fsync'ed, then renamed. The index row
is inserted *before* the file as ``pending`` and marked ``ok`` after the rename; deletions mark rows
``deleting`` before unlinking. Opening a store (writable) finishes or undoes whatever a crash
interrupted, so index and files always agree and no half-written image survives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framesift.errors import ConfigError, SinkError, SourceError
from framesift.frame import EncodedImage
from framesift.store import recovery, retention
from framesift.store.connection import index_error, is_disk_full, open_readonly, open_writable, reading
from framesift.store.paths import frame_relpath, inside
from framesift.store.schema import (
    COLUMNS,
    DELETING,
    EXTENSIONS,
    INDEX_NAME,
    OK,
    PENDING,
    SCHEMA_VERSION,
    StoredFrame,
    frame_from_row,
    where,
)

__all__ = [
    "DELETING", "EXTENSIONS", "INDEX_NAME", "OK", "PENDING", "SCHEMA_VERSION", "FrameStore", "StoredFrame",
]  # fmt: skip

log = logging.getLogger("framesift.store")


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
        """Create or open the store; a writable open recovers from an interrupted write first.

        An index that cannot be read raises a one-line SourceError (exit code 3) naming it; one that
        cannot be written, a non-transient SinkError. ConfigError if a read-only store does not exist.
        """
        with self._lock:
            if self._db is not None:
                return self
            if self.readonly:
                if not self.index_path.is_file():
                    raise ConfigError(
                        f"{self.root}: not a frame store (no {INDEX_NAME}); "
                        "collect frames first with `framesift collect ... -o DIR`"
                    )
                self._db = open_readonly(self.index_path)
            else:
                self._db = open_writable(self.root, self.index_path)
            try:
                with reading(self.index_path):
                    if not self.readonly:
                        self.recover()
                    self._total_bytes = int(
                        self._db.execute(
                            "SELECT COALESCE(SUM(bytes), 0) FROM frames WHERE status=?", (OK,)
                        ).fetchone()[0]
                    )
            except BaseException:
                self.close()
                raise
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

    def recover(self) -> int:
        """Undo writes and finish deletions a crash interrupted; returns the rows repaired."""
        with self._lock, reading(self.index_path):
            return recovery.recover(self.db, self.root)

    # ---------------------------------------------------------------- meta
    def get_meta(self, key: str) -> str | None:
        with self._lock, reading(self.index_path):
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            try:
                self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
                self.db.commit()
            except sqlite3.Error as exc:
                self._rollback()
                raise index_error(self.index_path, exc, writing=True) from None

    # ---------------------------------------------------------------- writing
    def encode(self, image: np.ndarray | EncodedImage) -> bytes:
        """RGB (or grey) uint8 → encoded bytes in the store's format (a CUDA tensor is copied to host).
        An :class:`~framesift.frame.EncodedImage` in the store's format, at most the store's
        quality, is written as it is: compressing it again would lose detail and save little."""
        if isinstance(image, EncodedImage):
            if image.format == self.format and self.format != "png" and image.quality <= self.quality:
                return image.data
            image = image.decode()
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
        """Where a frame goes: ``<source>/<YYYY-MM-DD>/<id>.<ext>``, each part sanitised (never outside)."""
        return frame_relpath(source, wallclock, frame_id, EXTENSIONS[self.format])

    def add(
        self,
        *,
        id: str,
        source: str,
        image: np.ndarray | EncodedImage,
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
        """Write one frame (tmp + fsync + rename) and index it, with its sha256; SinkError on failure."""
        if self.readonly:
            raise SinkError(f"frame store {self.root} is open read-only", transient=False)
        data = self.encode(image)
        digest = hashlib.sha256(data).hexdigest()
        rel = self.relative_path(source, wallclock, id)
        final = inside(self.root, rel)
        if final is None:  # only a symlink planted in the store can get here
            raise SinkError(
                f"frame store {self.root}: {rel} leads outside the store; not written", transient=False
            )
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
        if is_disk_full(exc):
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
            victims = retention.select_victims(
                self.db,
                now=now,
                total_bytes=self._total_bytes,
                max_age_s=self.max_age_s,
                max_bytes=self.max_bytes,
            )
            return self._delete(victims) if victims else 0

    def _delete(self, victims: list[retention.Victim]) -> int:
        retention.delete_frames(self.db, self.root, victims)
        self._total_bytes -= sum(v[2] for v in victims)
        self.removed += len(victims)
        return len(victims)

    def delete(self, ids: list[str]) -> int:
        """Remove frames by id (files and rows)."""
        with self._lock:
            rows: list[retention.Victim] = []
            for i in ids:
                rows += self.db.execute(
                    "SELECT id, path, bytes FROM frames WHERE id=? AND status=?", (i, OK)
                ).fetchall()
            return self._delete(rows) if rows else 0

    # ---------------------------------------------------------------- reading
    def count(self, source: str | None = None) -> int:
        with self._lock, reading(self.index_path):
            if source is None:
                return int(self.db.execute("SELECT COUNT(*) FROM frames WHERE status=?", (OK,)).fetchone()[0])
            q = "SELECT COUNT(*) FROM frames WHERE status=? AND source=?"
            return int(self.db.execute(q, (OK, source)).fetchone()[0])

    def sources(self) -> list[str]:
        with self._lock, reading(self.index_path):
            q = "SELECT DISTINCT source FROM frames WHERE status=? ORDER BY source"
            return [str(r[0]) for r in self.db.execute(q, (OK,))]

    def models(self) -> list[str]:
        """Embedding models recorded in the index (most frames first)."""
        with self._lock, reading(self.index_path):
            rows = self.db.execute(
                "SELECT model, COUNT(*) AS n FROM frames WHERE status=? AND model IS NOT NULL "
                "GROUP BY model ORDER BY n DESC",
                (OK,),
            ).fetchall()
            return [str(r[0]) for r in rows]

    def path_of(self, frame: StoredFrame) -> Path | None:
        """The frame's image file, or None if the index's path for it leads outside the store
        (symlinks followed): readers of :meth:`records` open images through this, never ``root / path``."""
        return inside(self.root, frame.path)

    def _row(self, r: tuple[Any, ...]) -> StoredFrame:
        return frame_from_row(r, self.index_path)

    def records(
        self, *, source: str | None = None, since: float | None = None, model: str | None = None
    ) -> list[StoredFrame]:
        """Index rows, oldest first."""
        clause, args = where(source, since, model)
        with self._lock, reading(self.index_path):
            rows = self.db.execute(
                f"SELECT {COLUMNS} FROM frames WHERE {clause} ORDER BY wallclock, rowid", args
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, frame_id: str) -> StoredFrame | None:
        with self._lock, reading(self.index_path):
            r = self.db.execute(
                f"SELECT {COLUMNS} FROM frames WHERE id=? AND status=?", (frame_id, OK)
            ).fetchone()
        return None if r is None else self._row(r)

    def _matrix(self, blobs: list[Any]) -> np.ndarray:
        """float16 blobs of one size → (n, dim) float32; SourceError if the index holds anything else."""
        sizes = {len(b) if isinstance(b, bytes) else -1 for b in blobs}
        if len(sizes) != 1 or min(sizes) <= 0 or min(sizes) % 2:
            raise SourceError(
                f"{self.index_path}: embeddings of different or invalid sizes in one model group; "
                "pass --source, or move the index aside and collect again",
                source=str(self.index_path),
            )
        mat = np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), -1)
        return mat.astype(np.float32)

    def iter_embeddings(
        self,
        *,
        model: str | None = None,
        source: str | None = None,
        since: float | None = None,
        chunk: int = 8192,
    ) -> Iterator[tuple[list[str], np.ndarray]]:
        """Chunks of ``(ids, (n, dim) float32)`` for frames with an embedding, in index order."""
        clause, args = where(source, since, model)
        q = f"SELECT id, dim, embedding FROM frames WHERE {clause} AND embedding IS NOT NULL ORDER BY rowid"
        with self._lock, reading(self.index_path):
            cur = self.db.cursor()
            cur.execute(q, args)
        while True:
            with self._lock, reading(self.index_path):
                rows = cur.fetchmany(chunk)
            if not rows:
                return
            dims = {r[1] for r in rows}
            if len(dims) != 1:
                raise ConfigError(
                    f"{self.root}: embeddings of different sizes {sorted(map(str, dims))} in one model group; "
                    "pass --source or rebuild the store"
                )
            yield [str(r[0]) for r in rows], self._matrix([r[2] for r in rows])

    def recent_embeddings(
        self, limit: int, *, source: str | None = None, model: str | None = None
    ) -> tuple[list[str], np.ndarray]:
        """The ``limit`` most recently kept embeddings (oldest first) — to seed a collector's bank."""
        clause, args = where(source, None, model)
        with self._lock, reading(self.index_path):
            rows = self.db.execute(
                f"SELECT source, embedding FROM frames WHERE {clause} AND embedding IS NOT NULL "
                "ORDER BY wallclock DESC, rowid DESC LIMIT ?",
                [*args, int(limit)],
            ).fetchall()
        rows.reverse()
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        return [str(r[0]) for r in rows], self._matrix([r[1] for r in rows])
