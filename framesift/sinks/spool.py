"""A bounded, ordered, durable on-disk queue of outgoing messages (SQLite, WAL, fsync'd).

Records keep their insertion order (``id`` grows). A record leaves the spool only when its
consumer calls :meth:`Spool.remove` (after the broker acknowledged it), so a crash at any point
redelivers instead of losing. When the spool exceeds ``max_events`` or ``max_bytes`` the oldest
records that are not in flight are dropped and counted in :attr:`Spool.dropped`.

Thread-safe: one lock guards the connection.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from framesift.errors import SinkError

log = logging.getLogger("framesift.sinks.spool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Record:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic)


class Spool:
    """Bounded durable FIFO in ``directory/spool.sqlite``."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_events: int,
        max_bytes: int,
        fsync: bool = True,
        name: str = "spool",
    ) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError("spool bounds must be positive")
        self.directory = Path(directory)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.name = name
        self.dropped = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self._bytes = 0

    @property
    def path(self) -> Path:
        return self.directory / "spool.sqlite"

    def open(self) -> None:
        """Create or reopen the spool; a corrupt file is moved aside (and reported), not fatal."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"spool.corrupt-{int(time.time())}.sqlite")
            log.warning("%s: spool %s unreadable (%s); moved to %s", self.name, self.path, exc, aside)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            self._db = self._connect()
        except OSError as exc:
            raise SinkError(
                f"{self.name}: cannot create spool directory {self.directory} ({exc}); "
                "set spool_dir to a writable directory",
                sink=self.name,
                transient=False,
            ) from None
        count, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0) FROM records"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)
        if self._count:
            log.info("%s: %d spooled events from a previous run will be delivered first", self.name, count)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        db.execute(_SCHEMA)
        db.execute("SELECT COUNT(*) FROM records").fetchone()  # surfaces corruption now
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.close()
                self._db = None

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise SinkError(f"{self.name}: spool is not open", sink=self.name, transient=False)
        return self._db

    def append(
        self, topic: str, payload: bytes, qos: int, retain: bool, *, keep_upto: int = 0
    ) -> tuple[int, int]:
        """Store one record durably; return ``(id, dropped)``.

        Over a bound, the oldest records with ``id > keep_upto`` (those not handed to the broker
        yet) are dropped; if only the new record could go, or it alone exceeds ``max_bytes``, it
        goes (and counts).
        """
        size = len(payload) + len(topic)
        with self._lock:
            db = self._conn()
            if size > self.max_bytes:  # could never fit: drop it alone, keep the backlog
                self.dropped += 1
                log.warning("%s: a %d-byte record exceeds the spool bound; dropped", self.name, size)
                return 0, 1
            try:
                with db:  # one transaction: insert + trim
                    db.execute("BEGIN IMMEDIATE")
                    cur = db.execute(
                        "INSERT INTO records (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                        (topic, payload, qos, int(retain), time.time()),
                    )
                    rid = int(cur.lastrowid or 0)
                    count, nbytes = self._count + 1, self._bytes + size
                    dropped = 0
                    while count > self.max_events or nbytes > self.max_bytes:
                        row = db.execute(
                            "SELECT id, LENGTH(payload) + LENGTH(topic) FROM records WHERE id > ? "
                            "ORDER BY id LIMIT 1",
                            (keep_upto,),
                        ).fetchone()
                        if row is None:
                            break
                        db.execute("DELETE FROM records WHERE id = ?", (row[0],))
                        count, nbytes, dropped = count - 1, nbytes - int(row[1]), dropped + 1
                        if row[0] == rid:
                            rid = 0
                            break
            except sqlite3.Error as exc:
                raise SinkError(
                    f"{self.name}: cannot write spool {self.path} ({exc}); free disk space or lower spool_max_mb",
                    sink=self.name,
                ) from None
            self._count, self._bytes = count, nbytes
            self.dropped += dropped
            return rid, dropped

    def head(self, limit: int, *, after: int = 0) -> list[Record]:
        """Up to ``limit`` records with ``id > after``, oldest first."""
        if limit <= 0:
            return []
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT id, topic, payload, qos, retain FROM records WHERE id > ? ORDER BY id LIMIT ?",
                    (after, limit),
                )
                .fetchall()
            )
        return [Record(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), bool(r[4])) for r in rows]

    def count_after(self, after: int) -> int:
        with self._lock:
            return int(
                self._conn().execute("SELECT COUNT(*) FROM records WHERE id > ?", (after,)).fetchone()[0]
            )

    def remove(self, ids: list[int]) -> int:
        """Delete acknowledged records; returns how many were present.

        Deletions are not fsync'd on their own (the next append's sync carries them): losing one
        to a power cut means a redelivery, never a loss.
        """
        if not ids:
            return 0
        with self._lock:
            db = self._conn()
            try:
                if self.fsync:
                    db.execute("PRAGMA synchronous=NORMAL")
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    marks = ",".join("?" * len(ids))
                    row = db.execute(
                        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0) "
                        f"FROM records WHERE id IN ({marks})",
                        ids,
                    ).fetchone()
                    db.execute(f"DELETE FROM records WHERE id IN ({marks})", ids)
            except sqlite3.Error as exc:
                raise SinkError(
                    f"{self.name}: cannot update spool {self.path} ({exc})", sink=self.name
                ) from None
            finally:
                if self.fsync:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("PRAGMA synchronous=FULL")
            n, nbytes = int(row[0]), int(row[1])
            self._count -= n
            self._bytes -= nbytes
            return n
