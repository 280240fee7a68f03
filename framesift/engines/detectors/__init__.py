"""Detector plugins: one module per detector type, holding its config model (a
:class:`~framesift.config.base.DetectorSpec`) and naming its implementation.

Plugin discovery imports every module here: they must not import torch, onnxruntime, open_clip or
ultralytics at module level (the implementations they name live in :mod:`framesift.engines.models`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framesift.config.base import DetectorSpec

if TYPE_CHECKING:
    from framesift.engines.base import Detector

__all__ = ["build_detector"]


def build_detector(spec: DetectorSpec, **options: Any) -> Detector:
    """The detector ``spec`` describes: its implementation's ``from_config(spec, **options)`` (or
    the implementation called with ``spec`` when it has none). ``options``: e.g. ``cache=``."""
    from framesift.engines.base import Detector
    from framesift.engines.plugins import build

    engine: Detector = build(spec, Detector, **options)
    return engine
