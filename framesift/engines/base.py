"""Capabilities that models provide, independent of the runtime that runs them."""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np

from framesift.frame import Frame

ImageLike = np.ndarray | Frame


def as_images(items: Sequence[ImageLike]) -> list[np.ndarray]:
    """Frames or arrays → list of (H, W, 3) uint8 RGB arrays."""
    return [it.image if isinstance(it, Frame) else it for it in items]


class Embedder(abc.ABC):
    """Maps images (and, where the model has a text tower, texts) to L2-normalised vectors."""

    name: str = "embedder"
    dim: int = 0
    supports_text: bool = False

    @abc.abstractmethod
    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalised; raises EngineError where the model has no text tower."""
        from framesift.errors import EngineError

        raise EngineError(
            f"embedder {self.name!r} has no text tower: text prompts need a CLIP model "
            "(set engine.model to an open_clip model with weights)",
            engine=self.name,
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release device memory / sessions."""
