"""The Analyzer contract: per-source, in-order frames (with engine outputs) in, typed events out."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

from framesift.events import Event
from framesift.frame import Frame


class Analyzer(abc.ABC):
    """Called by the pipeline's stage thread, per source in presentation order.

    ``needs_embedding`` tells the stage to run the embedder on the frame first; ``embedding`` is then
    the frame's L2-normalised vector, else None. Analyzers keep per-source state bounded.
    """

    name: str = "analyzer"
    needs_embedding: bool = False

    @abc.abstractmethod
    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        """Process one frame; return the events it causes (often none)."""

    def on_end(self, source_id: str) -> Iterable[Event]:
        """The source ended (file EOF or removal): flush pending state as events."""
        return ()
