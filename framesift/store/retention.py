"""Retention: which frames go when the store is over its size or age limit, and deleting them.

Oldest capture first; index row and file together (rows are marked ``deleting`` first, so a crash
in between is finished by recovery). A row whose path leads outside the store (a tampered index) is
dropped from the index, its file left alone, and the refusal counted and logged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from framesift.store.recovery import unlink_inside, warn_refused
from framesift.store.schema import DELETING, OK

Victim = tuple[str, str, int]  # id, path, bytes


def select_victims(
    db: sqlite3.Connection,
    *,
    now: float,
    total_bytes: int,
    max_age_s: float | None,
    max_bytes: int | None,
) -> list[Victim]:
    """Frames older than ``max_age_s``, then the oldest ones until the rest fit in ``max_bytes``."""
    victims: list[Victim] = []
    if max_age_s is not None:
        victims += db.execute(
            "SELECT id, path, bytes FROM frames WHERE status=? AND wallclock < ?", (OK, now - max_age_s)
        ).fetchall()
    if max_bytes is not None:
        excess = total_bytes - sum(v[2] for v in victims) - max_bytes
        if excess > 0:
            taken = {v[0] for v in victims}
            cur = db.execute(
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
    return victims


def delete_frames(db: sqlite3.Connection, root: Path, victims: list[Victim]) -> None:
    """Remove the victims' files (inside the store only) and rows; drop emptied date/source folders."""
    ids = [(v[0],) for v in victims]
    db.executemany(f"UPDATE frames SET status={DELETING} WHERE id=?", ids)
    db.commit()
    dirs: set[Path] = set()
    refused = 0
    for _id, rel, _n in victims:
        if unlink_inside(root, rel):
            dirs.add((root / rel).parent)
        else:
            refused += 1
    warn_refused(root, refused, "removing frames")
    db.executemany("DELETE FROM frames WHERE id=?", ids)
    db.commit()
    base = root.resolve()
    for d in dirs:
        for folder in (d, d.parent):
            try:
                if folder.resolve() == base or not folder.resolve().is_relative_to(base):
                    break
                folder.rmdir()
            except OSError:
                break
