"""A FrameKept event that also carries the kept image and its embedding to the frame store.

The extra fields are a non-serialised payload: :meth:`KeptFrame.to_dict` is exactly the
``frame_kept`` schema, so JSONL/MQTT/webhook sinks see a plain FrameKept. Only the frame store
reads ``image`` / ``embedding`` / ``model``. The image is the frame's own read-only array (no copy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from framesift.events import SCHEMA, FrameKept, _jsonable

_PAYLOAD = ("image", "embedding", "model")


@dataclass(frozen=True, kw_only=True)
class KeptFrame(FrameKept):
    """``FrameKept`` + payload for the store (never serialised)."""

    image: Any = field(default=None, repr=False, compare=False)
    embedding: Any = field(default=None, repr=False, compare=False)
    model: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the ``frame_kept`` schema (the payload is left out)."""
        out: dict[str, Any] = {"schema": SCHEMA, "type": self.type}
        for f in dataclasses.fields(self):
            if f.name not in _PAYLOAD:
                out[f.name] = _jsonable(getattr(self, f.name))
        return out
