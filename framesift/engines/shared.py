"""Engines built once per process and shared: a registry keyed by what makes two engines the same.

Two trackers, or a tracker and a collector, that ask for the same CLIP (model, weights, runtime,
device, precision) get one instance: :func:`acquire` builds it on first use and hands out a
:class:`Lease` per caller; the engine is closed when the last lease is closed.
:func:`clip_text_engine` is the shared CLIP text engine YOLO-World's prompts go through.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

if TYPE_CHECKING:
    from framesift.engines.models.clip import ClipEmbedder

__all__ = ["ClipKey", "Lease", "acquire", "clip_text_engine", "clip_weights", "shared_count"]

log = logging.getLogger("framesift.engines.shared")

T = TypeVar("T")


class _Entry:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.refs = 0


_lock = threading.RLock()
_entries: dict[Hashable, _Entry] = {}


class Lease(Generic[T]):
    """One caller's reference to a shared engine; :meth:`close` releases it (once)."""

    def __init__(self, key: Hashable, engine: T) -> None:
        self.key = key
        self.engine = engine
        self._closed = False

    def close(self) -> None:
        """Release this reference; the engine itself closes with its last lease."""
        with _lock:
            if self._closed:
                return
            self._closed = True
            entry = _entries.get(self.key)
            if entry is None or entry.engine is not self.engine:
                return
            entry.refs -= 1
            last = entry.refs <= 0
            if last:
                del _entries[self.key]
        if last:
            close = getattr(self.engine, "close", None)
            if callable(close):
                close()
            log.debug("shared engine %s closed", self.key)

    def __enter__(self) -> Lease[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def acquire(key: Hashable, build: Callable[[], T]) -> Lease[T]:
    """A lease on the engine registered under ``key``, built with ``build()`` when there is none."""
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            entry = _entries[key] = _Entry(build())  # under the lock: concurrent askers wait for one build
            log.debug("shared engine %s built", key)
        entry.refs += 1
        return Lease(key, entry.engine)


def shared_count(key: Hashable) -> int:
    """How many open leases hold the engine under ``key`` (0: none registered)."""
    with _lock:
        entry = _entries.get(key)
        return entry.refs if entry else 0


# --------------------------------------------------------------------------- CLIP


@dataclass(frozen=True)
class ClipKey:
    """What makes two CLIP text engines the same one: model, weights and the plan's runtime, device
    and precision."""

    model: str
    weights: str
    runtime: str
    device: str
    precision: str


def clip_weights(pretrained: str | None) -> tuple[str | None, str | None]:
    """``(tag, checkpoint)`` from a ``clip_pretrained`` value: an open_clip tag, a local checkpoint
    path (an existing file, or a name with a path separator or weights suffix), or None / ``none``
    for random weights."""
    if pretrained is None or pretrained.strip().lower() in ("", "none"):
        return None, None
    suffixes = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
    if os.path.exists(pretrained) or os.sep in pretrained or pretrained.endswith(suffixes):
        return None, pretrained
    return pretrained, None


def _weights_id(tag: str | None, checkpoint: str | None) -> str:
    if checkpoint is not None:
        p = Path(checkpoint).expanduser().resolve()
        try:
            st = p.stat()
            return f"file:{p}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            return f"file:{p}"
    return f"tag:{tag}" if tag else "random"


class ClipTextLease(Lease["ClipEmbedder"]):
    """A lease on a shared CLIP engine used for its text tower: call it with texts for
    L2-normalised (N, dim) float32 embeddings (YOLO-World's ``text_encoder``)."""

    @property
    def dim(self) -> int:
        return int(self.engine.dim)

    @property
    def model_id(self) -> str:
        return self.engine.model_id

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.engine.embed_texts(list(texts))


def clip_text_engine(
    model: str = "ViT-B-32",
    pretrained: str | None = "openai",
    *,
    runtime: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    cache_dir: str | None = None,
    offline: bool = False,
) -> ClipTextLease:
    """A lease on the shared CLIP text engine of ``model`` with ``pretrained`` weights (see
    :func:`clip_weights`), built as a text-only :class:`ClipEmbedder` where the plan for
    ``clip_text`` puts it, once per :class:`ClipKey`."""
    from framesift.engines.plan import plan_engine

    tag, checkpoint = clip_weights(pretrained)
    plan = plan_engine("clip_text", runtime=runtime, device=device, precision=precision)
    key = ClipKey(model, _weights_id(tag, checkpoint), plan.runtime, plan.device, plan.precision)

    def build() -> ClipEmbedder:
        from framesift.engines.models.clip import ClipEmbedder

        return ClipEmbedder(
            model,
            pretrained=tag,
            checkpoint=checkpoint,
            cache_dir=cache_dir,
            offline=offline,
            text_only=True,
            plan=plan,
        )

    lease = acquire(key, build)
    return ClipTextLease(lease.key, lease.engine)
