"""The Analyzer contract: per-source, in-order frames (with engine outputs) in, typed events out."""

from __future__ import annotations

import abc
from collections.abc import Iterable

import numpy as np

from framesift.config.base import AnalyzerSpec
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

    Analyzers read each other's outputs through events: one that lists event classes in
    ``consumes`` gets every such event another analyzer of the pipeline emits, through
    :meth:`on_event`, on the stage thread, before the sinks see it; ``produces`` declares what an
    analyzer emits. The stage runs producers before their consumers (for each frame, and at a
    source's end), so a consumer has the events of the frames it has seen.
    """

    name: str = "analyzer"
    needs_embedding: bool = False
    #: At most how many frames after a frame this analyzer emits its events about that frame.
    delay_frames: int = 0
    batched: bool = False
    produces: tuple[type[Event], ...] = ()
    consumes: tuple[type[Event], ...] = ()

    @abc.abstractmethod
    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        """Process one frame; return the events it causes (often none)."""

    def wants_embedding(self, frame: Frame) -> bool:
        """Whether this frame's embedding is needed (asked in order, before ``on_frame``; only when
        ``needs_embedding``). An analyzer that judges a few frames says which, and the stage embeds
        only the frames some analyzer wants: the others reach ``on_frame`` with ``None``."""
        return True

    def on_batch(self, frames: list[Frame]) -> None:  # noqa: B027 - optional hook
        """Called once per batch, before ``on_frame`` on each of its frames (only when ``batched``).

        Precompute per-frame results here; keep at most one batch's worth of them.
        """

    def on_event(self, event: Event) -> Iterable[Event]:
        """An event another analyzer emitted, of a class in ``consumes``; return the events it causes."""
        return ()

    def on_end(self, source_id: str) -> Iterable[Event]:
        """The source ended (file EOF or removal): flush pending state as events."""
        return ()

    def companions(self) -> list[AnalyzerSpec]:
        """Analyzers to add, with these configs, when nothing in the pipeline produces an event class
        this one ``consumes``."""
        return []

    def bind(self, peers: list[Analyzer]) -> None:  # noqa: B027 - optional hook
        """Called once with every analyzer of the pipeline (itself included), before any frame."""

    def on_source(self, source_id: str, live: bool) -> None:  # noqa: B027 - optional hook
        """A source joined the pipeline (``live``: it does not end); raise ConfigError to refuse it."""

    def rebind(self, old: Embedder, new: Embedder) -> None:  # noqa: B027 - optional hook
        """The pipeline rebuilt its embedder after a failure: an analyzer holding ``old`` (for text
        prompts, refinement, labels) switches to ``new``."""
