"""Fixtures for the engine tests: real decoded frames of several sizes, tiny CLIP models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framesift.samples import write_clip
from tests.engines.clip_helpers import decoded_frames

SIZES = ((320, 240), (240, 320), (1280, 720), (100, 100))


@pytest.fixture(scope="session")
def frames_by_size(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], list[np.ndarray]]:
    """3 decoded frames (RGB uint8) per (width, height), from clips written by framesift.samples."""
    root: Path = tmp_path_factory.mktemp("engine-clips")
    out: dict[tuple[int, int], list[np.ndarray]] = {}
    for i, (w, h) in enumerate(SIZES):
        info = write_clip(root / f"clip_{w}x{h}.mp4", segments=(2, 1), width=w, height=h, seed=i)
        out[(w, h)] = decoded_frames(info.path)
    return out
