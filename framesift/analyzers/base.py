"""The Analyzer contract: per-source, in-order frames (with engine outputs) in, typed events out."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

from framesift.engines.base import Embedder
from framesift.events import Event
from framesift.frame import Frame


class Analyzer(abc.ABC):
    """Called by the pipeline's stage thread, per source in presentation order.

    ``needs_embedding`` tells the stage to run the embedder on the frame first; ``embedding`` is then
    the frame's L2-normalised vector, else None. Analyzers keep per-source state bounded.

    ``batched`` asks the stage to hand the analyzer each whole batch (frames of all sources, each
    source in order) through :meth:`on_batch` before the per-frame ``on_frame`` calls, so it can
    run batched inference across sources; the stage then batches (``stage.max_batch`` /
    ``stage.max_wait_ms``) even when no analyzer needs an embedding.
    """

    name: str = "analyzer"
    needs_embedding: bool = False
    batched: bool = False

    @abc.abstractmethod
    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        """Process one frame; return the events it causes (often none)."""

    def on_batch(self, frames: list[Frame]) -> None:  # noqa: B027 - optional hook
        """Called once per batch, before ``on_frame`` on each of its frames (only when ``batched``).

        Precompute per-frame results here; keep at most one batch's worth of them.
        """

    def on_end(self, source_id: str) -> Iterable[Event]:
        """The source ended (file EOF or removal): flush pending state as events."""
        return ()

    def rebind(self, old: Embedder, new: Embedder) -> None:  # noqa: B027 - optional hook
        """The pipeline rebuilt its embedder after a failure: an analyzer holding ``old`` (for text
        prompts, refinement, labels) switches to ``new``."""
