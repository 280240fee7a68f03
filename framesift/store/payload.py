"""Former home of the kept-frame event; kept so ``framesift.store.KeptFrame`` imports keep working.

The event model owns both now: :class:`framesift.events.FrameKept` carries an optional
:class:`framesift.events.FramePayload` (image, embedding, model id; never serialised) that the frame
store takes once. ``KeptFrame`` is another name for ``FrameKept``.
"""

from __future__ import annotations

from framesift.events import FrameKept, FramePayload

KeptFrame = FrameKept

__all__ = ["FramePayload", "KeptFrame"]
