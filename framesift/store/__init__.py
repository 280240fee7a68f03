"""The kept-frame store: image files plus an SQLite index, retention, search and dataset export."""

from framesift.store.index import FrameStore, StoredFrame
from framesift.store.paths import resolve_store_dir
from framesift.store.payload import KeptFrame

__all__ = ["FrameStore", "KeptFrame", "StoredFrame", "resolve_store_dir"]
