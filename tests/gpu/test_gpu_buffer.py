"""Ring-buffer capacity from a GPU memory budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framesift.stream.gpu_buffer import capacity_for_budget, frame_nbytes, image_nbytes


def test_frame_nbytes() -> None:
    assert frame_nbytes(1920, 1080) == 1920 * 1080 * 3
    assert frame_nbytes(1920, 1080, "gray") == 1920 * 1080
    with pytest.raises(ValueError, match="pixel_format"):
        frame_nbytes(10, 10, "yuv420p")
    with pytest.raises(ValueError, match="positive"):
        frame_nbytes(0, 10)


def test_capacity_for_budget() -> None:
    one = frame_nbytes(1920, 1080)  # 5.93 MiB
    assert capacity_for_budget(64, 1920, 1080) == (64 * 1024 * 1024) // one == 10
    assert capacity_for_budget(64, 1920, 1080, max_capacity=4) == 4  # the configured count still bounds
    assert capacity_for_budget(1, 1920, 1080) == 1  # never 0: a source needs one slot
    assert capacity_for_budget(1, 1920, 1080, min_capacity=2) == 2
    assert capacity_for_budget(64, 224, 224) == (64 * 1024 * 1024) // (224 * 224 * 3)
    with pytest.raises(ValueError, match="gpu_buffer_mb"):
        capacity_for_budget(0, 10, 10)


def test_image_nbytes_numpy_and_torch() -> None:
    assert image_nbytes(np.zeros((120, 160, 3), np.uint8)) == 120 * 160 * 3
    assert image_nbytes(torch.zeros((120, 160, 3), dtype=torch.uint8)) == 120 * 160 * 3
    assert image_nbytes(torch.zeros((2, 2), dtype=torch.float16)) == 8
