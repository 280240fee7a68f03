"""Opening the SQLite index, and turning every SQLite failure into one line that names the file.

A store given as input (``search``, ``export``, ``label``, the collector reloading its memory)
that cannot be read — truncated, garbage, not a framesift index, locked by another process — raises
:class:`~framesift.errors.SourceError` (exit code 3, "input unreadable"). Opening it for writing
raises the same SourceError for an index that exists but is unreadable, and a non-transient
:class:`~framesift.errors.SinkError` (exit code 1) when it cannot be written (locked, read-only
folder, disk full). No ``sqlite3`` traceback reaches a user.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from framesift.errors import FramesiftError, SinkError, SourceError
from framesift.store.schema import COLUMNS, SCHEMA, SCHEMA_VERSION

LOCK_TIMEOUT_S = 5.0  # how long opening waits for another process's lock before saying so
BUSY_TIMEOUT_S = 30.0  # once open: how long a statement waits for a lock (a writer's short commit)

_BUSY = {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_BUSY_SNAPSHOT", "SQLITE_BUSY_RECOVERY"}
_BROKEN = {"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CORRUPT_INDEX", "SQLITE_CORRUPT_SEQUENCE"}


def _errorname(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def is_disk_full(exc: BaseException) -> bool:
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and (
        _errorname(exc) == "SQLITE_FULL" or "full" in str(exc).lower()
    )


def index_error(index: Path, exc: BaseException, *, writing: bool = False) -> FramesiftError:
    """The one-line error for an SQLite failure on ``index`` (see the module docstring)."""
    name = _errorname(exc)
    text = str(exc)
    if name in _BUSY or "locked" in text:
        msg = (
            f"{index}: locked by another process (waited {LOCK_TIMEOUT_S:g}s); stop the program holding "
            "it (another framesift writing this store, or an sqlite3 shell inside a transaction) and retry"
        )
        return SinkError(msg, transient=False) if writing else SourceError(msg, source=str(index))
    broken = (
        name in _BROKEN
        or name.startswith("SQLITE_CORRUPT")
        or (isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError))
        or "no such table" in text
        or "no such column" in text
    )
    if broken:
        return SourceError(
            f"{index}: not a readable frame store index ({text}); it is truncated, damaged or not "
            f"written by framesift: move it aside (mv {index} {index}.bad) and collect again, or restore "
            "it from a backup (the image files are left as they are)",
            source=str(index),
        )
    if writing:
        if is_disk_full(exc):
            return SinkError(
                f"{index}: disk full while opening the frame store index; free space", transient=False
            )
        return SinkError(
            f"{index}: cannot open the frame store index for writing ({text}); check that its folder is "
            "writable and the disk is healthy",
            transient=False,
        )
    return SourceError(
        f"{index}: cannot read the frame store index ({text}); check the file's permissions and the disk",
        source=str(index),
    )


@contextlib.contextmanager
def reading(index: Path) -> Iterator[None]:
    """Turns an SQLite failure while reading ``index`` into :func:`index_error`'s one line."""
    try:
        yield
    except sqlite3.Error as exc:
        raise index_error(index, exc) from None


def _check(db: sqlite3.Connection, index: Path) -> None:
    """Fail now, not in the middle of a command, if ``index`` is not a framesift index we can read."""
    _check_schema(db, index)
    db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")


def _check_schema(db: sqlite3.Connection, index: Path) -> None:
    db.execute(f"SELECT {COLUMNS}, dim, embedding, status FROM frames LIMIT 0").fetchall()
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    try:
        version = int(row[0]) if row is not None else SCHEMA_VERSION
    except (TypeError, ValueError):
        version = -1
    if version != SCHEMA_VERSION:
        raise SourceError(
            f"{index}: frame store schema {row[0]!r} is not the one this framesift reads ({SCHEMA_VERSION}); "
            "use the framesift version that wrote it",
            source=str(index),
        )


def open_readonly(index: Path) -> sqlite3.Connection:
    """A read-only connection to an existing index, checked (see :func:`index_error`)."""
    db: sqlite3.Connection | None = None
    try:
        uri = index.resolve().as_uri() + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=LOCK_TIMEOUT_S)
        _check(db, index)
        return db
    except (sqlite3.Error, FramesiftError) as exc:
        if db is not None:
            db.close()
        if isinstance(exc, FramesiftError):
            raise
        raise index_error(index, exc) from None


def open_writable(root: Path, index: Path) -> sqlite3.Connection:
    """A connection that creates the index (WAL journal) if needed, checked; an existing index is
    checked before anything is written to it, so one we cannot read is left exactly as it was."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkError(f"frame store {root}: cannot create the folder ({exc})", transient=False) from None
    db: sqlite3.Connection | None = None
    try:
        existed = index.is_file() and index.stat().st_size > 0
        db = sqlite3.connect(str(index), check_same_thread=False, timeout=LOCK_TIMEOUT_S)
        if existed:
            _check_schema(db, index)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.commit()
        _check(db, index)
        return db
    except (sqlite3.Error, FramesiftError) as exc:
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        if isinstance(exc, FramesiftError):
            raise
        raise index_error(index, exc, writing=True) from None
