"""Scenes of video files and their outputs (CSV, JSON, EDL, thumbnails, HTML report, split).

``detect_scenes`` runs the pipeline (imported on first use, so the outputs can be used by sinks
without importing the pipeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framesift.scenes.model import Scene, SceneList
from framesift.scenes.outputs import write_all

if TYPE_CHECKING:
    from framesift.scenes.detect import detect_scenes

__all__ = ["Scene", "SceneList", "detect_scenes", "write_all"]


def __getattr__(name: str) -> Any:
    if name == "detect_scenes":
        from framesift.scenes.detect import detect_scenes

        return detect_scenes
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
