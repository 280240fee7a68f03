"""Configuration of the ``scene_change`` analyzer (live streams and files)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from framesift.config.sources import Strict


class SceneChangeConfig(Strict):
    """Scene-change detection on consecutive-frame embedding distances.

    ``mode``: ``pixel`` uses the built-in weight-free embedder on every frame (the pipeline's
    embedder is not needed); ``clip`` uses the pipeline's embedder (CLIP) on every frame; ``hybrid``
    runs ``pixel`` on every frame and the pipeline's embedder only on candidate cuts, to confirm
    each one and move it to the exact frame. Distances are cosine distances (1 - cos).

    The detector is causal in both live and file use (so a file and its live replay give the same
    boundaries): an event leaves at most ``SceneChangeAnalyzer.max_delay_frames`` after its frame.
    """

    type: Literal["scene_change"] = "scene_change"
    mode: Literal["pixel", "clip", "hybrid"] = "pixel"
    # Hard cuts: score = distance to the previous frame, compared with its rolling neighbourhood.
    window: int = Field(48, ge=8, le=10_000, description="frames in the rolling median/MAD window")
    threshold_k: float = Field(8.0, gt=0, description="cut if score > median + k * 1.4826 * MAD")
    threshold_ratio: float = Field(4.0, ge=1.0, description="... and score > ratio * median")
    min_score: float | None = Field(
        None, ge=0, le=2, description="absolute floor for a cut score; None: 0.15 (pixel), 0.08 (clip)"
    )
    min_changed_area: float = Field(
        0.15, ge=0, le=1, description="pixel/hybrid: share of the picture that must change for a cut"
    )
    min_scene_len: int = Field(8, ge=1, description="frames; a boundary closer to the last is ignored")
    flash_frames: int = Field(
        2, ge=0, le=10, description="excursions this long that return are flashes, not cuts"
    )
    # Gradual transitions (dissolves, fades): distance to the frame k back.
    gradual: bool = True
    gradual_k: int = Field(8, ge=2, le=120, description="frames back for the gradual signal")
    gradual_threshold_k: float = Field(6.0, gt=0)
    gradual_min_score: float | None = Field(
        None, ge=0, le=2, description="before/after distance for a gradual transition; None: by mode"
    )
    max_transition: int = Field(60, ge=4, le=2000, description="longest dissolve/fade, frames")
    dark_level: float = Field(24.0, ge=0, le=255, description="black: no 1/32-width cell brighter")
    # Hybrid refinement.
    refine_radius: int = Field(2, ge=0, le=10, description="hybrid: frames either side searched")
    refine_min_score: float = Field(0.05, ge=0, le=2, description="hybrid: CLIP distance confirming a cut")
    # Labels and thumbnails.
    labels: list[str] = Field(default_factory=list, description="zero-shot prompts for each scene")
    thumbnails: bool = False
    thumbnail_dir: str | None = None
    thumbnail_width: int = Field(160, ge=16, le=1920)

    @model_validator(mode="after")
    def _check(self) -> SceneChangeConfig:
        if self.thumbnails and not self.thumbnail_dir:
            raise ValueError("thumbnails: true needs thumbnail_dir (a folder for the JPEG files)")
        return self

    def cut_floor(self) -> float:
        if self.min_score is not None:
            return self.min_score
        return 0.08 if self.mode == "clip" else 0.15

    def gradual_floor(self) -> float:
        if self.gradual_min_score is not None:
            return self.gradual_min_score
        return 0.15 if self.mode == "clip" else 0.3
