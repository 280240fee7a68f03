"""Crash recovery: finish or undo what an interrupted write or deletion left behind.

A row is inserted as ``pending`` before its image is written (``<name>.tmp``, fsync, rename) and
marked ``ok`` after; a deletion marks rows ``deleting`` before unlinking. A writable open calls
:func:`recover`, which removes the files of pending/deleting rows and the rows themselves, so index
and files agree and no half-written image survives. A path that does not resolve inside the store
(a tampered index) is never unlinked: its row is dropped and the refusal counted and logged.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from framesift.store.paths import inside
from framesift.store.schema import DELETING, PENDING

log = logging.getLogger("framesift.store")


def warn_refused(root: Path, refused: int, what: str) -> None:
    """One warning for the index paths an operation refused because they lead outside the store."""
    if refused:
        log.warning(
            "frame store %s: refused %d index path(s) outside the store while %s (nothing done to those "
            "files; the index may have been tampered with)",
            root, refused, what,
        )  # fmt: skip


def unlink_inside(root: Path, rel: object) -> bool:
    """Unlink ``root/rel`` and its ``.tmp`` sibling if ``rel`` stays inside the store; False if refused."""
    path = inside(root, rel) if isinstance(rel, str) else None
    if path is None:
        return False
    for p in (path, path.with_name(path.name + ".tmp")):
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:  # a folder, or no permission: leave it, say so
            log.warning("frame store %s: cannot remove %s (%s)", root, p, exc)
    return True


def recover(db: sqlite3.Connection, root: Path) -> int:
    """Undo writes and finish deletions a crash interrupted; returns the rows repaired."""
    rows = db.execute(
        "SELECT id, path, status FROM frames WHERE status IN (?, ?)", (PENDING, DELETING)
    ).fetchall()
    refused = sum(not unlink_inside(root, rel) for _id, rel, _status in rows)
    warn_refused(root, refused, "recovering interrupted writes")
    if rows:
        db.executemany("DELETE FROM frames WHERE id=?", [(r[0],) for r in rows])
        db.commit()
        log.info("frame store %s: repaired %d interrupted write(s)/deletion(s)", root, len(rows))
    return len(rows)
