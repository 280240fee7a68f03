"""Capabilities that models provide, independent of the runtime that runs them: :class:`Embedder`,
:class:`Detector` and :class:`Segmenter`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

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
    logit_scale: float | None = None
    """The model's own scale of cosine similarities for zero-shot softmax (CLIP); None without one."""

    @property
    def model_id(self) -> str:
        """A runtime-independent identity of the embedding space (architecture and weights):
        embeddings are comparable across runs (memory bank reload, search) only under the same id."""
        return self.name

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


class Detector(abc.ABC):
    """Finds objects named by text prompts. ``detect`` returns one ``sv.Detections`` per image with
    ``data["class_name"]`` holding the prompt of each box."""

    name: str = "detector"

    @abc.abstractmethod
    def detect(self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None) -> list[Any]:
        """Detect in a batch; ``prompts`` None keeps the current prompt set."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions."""


class Segmenter(abc.ABC):
    """Turns boxes on one image into masks at the image's resolution."""

    name: str = "segmenter"

    @abc.abstractmethod
    def segment(self, image: ImageLike, boxes: np.ndarray) -> np.ndarray:
        """``boxes`` (N, 4) xyxy in image pixels → (N, H, W) bool masks."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions."""
