"""TransNetV2 in fp16 on CUDA against the package's fp32 probabilities (within 1e-2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.engines.test_transnet import reference  # noqa: F401 - the module-scoped fixture

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("runtime", ["torch"])
def test_fp16_on_cuda_within_1e_2(reference: dict[str, np.ndarray], runtime: str, tmp_path: Path) -> None:  # noqa: F811
    from framesift.engines.models.transnet import ShotModel, predict_frames

    model = ShotModel(runtime=runtime, device="cuda", precision="fp16", cache_dir=tmp_path)
    single, many = predict_frames(model, reference["frames"])
    assert np.abs(single - reference["single"]).max() < 1e-2
    assert np.abs(many - reference["many"]).max() < 1e-2
    assert ((single > 0.5) == (reference["single"] > 0.5)).mean() > 0.99
