"""A FrameKept event that also carries the kept image and its embedding to the frame store.

The payload is not serialised: :meth:`KeptFrame.to_dict` is exactly the ``frame_kept`` schema, so
JSONL/MQTT/webhook sinks see a plain FrameKept. The frame store *takes* the payload when it writes
the frame (:meth:`FramePayload.take`), so an event kept alive elsewhere afterwards (e.g. for latency
bookkeeping) no longer pins the image. The image is the frame's own read-only array (no copy).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

from framesift.events import SCHEMA, FrameKept, _jsonable


class FramePayload:
    """The image, embedding and model id of a kept frame, handed over once."""

    __slots__ = ("_lock", "embedding", "image", "model")

    def __init__(self, image: Any, embedding: Any = None, model: str | None = None) -> None:
        self.image = image
        self.embedding = embedding
        self.model = model
        self._lock = threading.Lock()

    def take(self) -> tuple[Any, Any, str | None] | None:
        """``(image, embedding, model)`` the first time, then None (the references are dropped)."""
        with self._lock:
            if self.image is None:
                return None
            out = (self.image, self.embedding, self.model)
            self.image = self.embedding = None
            return out


@dataclass(frozen=True, kw_only=True)
class KeptFrame(FrameKept):
    """``FrameKept`` + a payload for the frame store (never serialised)."""

    payload: FramePayload | None = field(default=None, repr=False, compare=False)

    @property
    def image(self) -> Any:
        return None if self.payload is None else self.payload.image

    @property
    def embedding(self) -> Any:
        return None if self.payload is None else self.payload.embedding

    @property
    def model(self) -> str | None:
        return None if self.payload is None else self.payload.model

    def to_dict(self) -> dict[str, Any]:
        """Exactly the ``frame_kept`` schema (the payload is left out)."""
        out: dict[str, Any] = {"schema": SCHEMA, "type": self.type}
        for f in dataclasses.fields(self):
            if f.name != "payload":
                out[f.name] = _jsonable(getattr(self, f.name))
        return out
