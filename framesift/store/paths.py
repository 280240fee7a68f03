"""Where a frame's file lives, and the rule that every path the index names stays inside the store.

* :func:`frame_relpath` builds ``<source>/<YYYY-MM-DD>/<id>.<ext>`` from a source id and a frame id
  that may hold anything (``..``, ``a/b``, ``/etc``): each becomes one safe path component.
* :func:`inside` resolves a path read from the index (``..``, absolute paths, symlinks) and returns
  it only if it stays inside the store; recovery, retention, export and the search gallery refuse
  (and count) the others, so a tampered index never makes framesift delete, link or show a file
  outside the store.
* :func:`resolve_store_dir` accepts a store folder or the folder ``framesift collect -o DIR`` wrote.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from framesift.errors import ConfigError
from framesift.store.schema import INDEX_NAME

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_COMPONENT = 120  # bytes; file systems allow 255, and ".tmp" and the extension come on top


def safe_component(text: str) -> str:
    """``text`` as one file-name component: letters, digits, ``_.-`` only, no leading dot, bounded.

    A name that had to change gets a short hash of the original, so two ids that differ only in
    unsafe characters (``a/1`` and ``a_1``) never share a file.
    """
    safe = _UNSAFE.sub("_", text).lstrip(".")
    if safe == text and 0 < len(safe) <= _MAX_COMPONENT:
        return safe
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe[: _MAX_COMPONENT - 9] or '_'}-{digest}"


def frame_relpath(source: str, wallclock: float, frame_id: str, ext: str) -> str:
    """``<source>/<YYYY-MM-DD>/<id><ext>`` (UTC capture date), always relative and inside the store."""
    try:
        day = datetime.fromtimestamp(wallclock, tz=timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        day = "undated"
    return f"{safe_component(source)}/{day}/{safe_component(frame_id)}{ext}"


def inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if it resolves (symlinks followed) inside ``root``, else None.

    Absolute paths, ``..`` components, the index's own files and anything that resolves elsewhere
    are refused; the path returned is the unresolved ``root / rel`` (the name that is unlinked or read).
    """
    if not isinstance(rel, str) or not rel or "\0" in rel:
        return None
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or rel.startswith(("/", "\\")):
        return None
    base = root.resolve()
    path = root / rel
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    if resolved == base or not resolved.is_relative_to(base):
        return None
    if resolved.parent == base and resolved.name.startswith(INDEX_NAME):
        return None  # the index itself (or its -wal / -shm) is never a frame
    return path


def resolve_store_dir(path: str | os.PathLike[str]) -> Path:
    """A frame store folder: ``path`` itself, or ``path/store`` when ``path`` is a ``framesift collect``
    output folder; ConfigError (one line) otherwise."""
    p = Path(path)
    if (p / INDEX_NAME).is_file():
        return p
    if (p / "store" / INDEX_NAME).is_file():
        return p / "store"
    raise ConfigError(
        f"{p}: not a frame store (no {INDEX_NAME} in it or in {p / 'store'}); "
        "collect frames first with `framesift collect ... -o DIR` and pass DIR or DIR/store"
    )
