"""Prompt relevance for the collector: how well a frame embedding matches positive text prompts
against negative ones (see :mod:`framesift.analyzers.collector`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framesift.engines.base import Embedder
from framesift.errors import ConfigError

DEFAULT_NEGATIVES = ("a photo of an empty scene", "a photo of the background", "a blurry photo")
DEFAULT_LOGIT_SCALE = 100.0


@dataclass
class Prompts:
    """Positive and negative prompt embeddings (L2-normalised) and the softmax temperature."""

    pos: np.ndarray
    neg: np.ndarray
    mode: str
    logit_scale: float

    @classmethod
    def build(
        cls,
        prompts: list[str],
        negatives: list[str],
        mode: str,
        logit_scale: float | None,
        embedder: Embedder | None,
    ) -> Prompts:
        if embedder is None or not embedder.supports_text:
            name = "none" if embedder is None else embedder.name
            raise ConfigError(
                f"collector prompts {prompts!r} need an embedder with a text tower (CLIP); "
                f"embedder {name!r} has none: remove the prompts (novelty still works) or set "
                "engine.model (framesift collect: --model) to an open_clip model with weights"
            )
        negatives = list(negatives)
        if not negatives and mode == "softmax":
            negatives = list(DEFAULT_NEGATIVES)
        vecs = np.asarray(embedder.embed_texts(list(prompts) + negatives), dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        n = len(prompts)
        scale = logit_scale or embedder.logit_scale or DEFAULT_LOGIT_SCALE
        return cls(vecs[:n], vecs[n:], mode, float(scale))

    def relevance(self, e: np.ndarray) -> float:
        """``softmax``: the positives' share of softmax(scale · cosines); ``margin``: best positive
        cosine minus best negative cosine."""
        pos = self.pos @ e
        neg = self.neg @ e
        if self.mode == "margin":
            return float(pos.max() - (neg.max() if neg.size else 0.0))
        logits = self.logit_scale * np.concatenate([pos, neg])
        logits -= logits.max()
        p = np.exp(logits)
        p /= p.sum()
        return float(p[: pos.size].sum())
