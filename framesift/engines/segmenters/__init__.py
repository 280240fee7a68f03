"""Segmenter plugins: one module per segmenter type, holding its config model (a
:class:`~framesift.config.base.SegmenterSpec`) and naming its implementation.

Plugin discovery imports every module here: they must not import torch, onnxruntime or the SAM
reference packages at module level (the implementations live in :mod:`framesift.engines.models`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framesift.config.base import SegmenterSpec

if TYPE_CHECKING:
    from framesift.engines.base import Segmenter

__all__ = ["build_segmenter"]


def build_segmenter(spec: SegmenterSpec, **options: Any) -> Segmenter:
    """The segmenter ``spec`` describes: its implementation's ``from_config(spec, **options)`` (or
    the implementation called with ``spec`` when it has none). ``options``: e.g. ``cache=``."""
    from framesift.engines.base import Segmenter
    from framesift.engines.plugins import build

    engine: Segmenter = build(spec, Segmenter, **options)
    return engine
