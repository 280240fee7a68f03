"""File-mode scene detection and its outputs (CSV, JSON, EDL, thumbnails, HTML report, split)."""

from framesift.scenes.detect import detect_scenes
from framesift.scenes.model import Scene, SceneList
from framesift.scenes.outputs import write_all

__all__ = ["Scene", "SceneList", "detect_scenes", "write_all"]
