"""Compatibility names for callers not yet moved: ``Detector``/``Segmenter`` live in
:mod:`framesift.engines.base`, ``EngineCache``/``EngineKey`` in :mod:`framesift.engines.cache`.

Remove this module once ``framesift/analyzers/tracking.py`` and ``tests/detect`` import from there.
"""

from __future__ import annotations

from framesift.engines.base import Detector, Segmenter
from framesift.engines.cache import EngineCache, EngineKey

__all__ = ["Detector", "EngineCache", "EngineKey", "Segmenter"]
