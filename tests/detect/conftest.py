"""Shared fixtures for detection tests: one engine cache per session, tiny random-weight references."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

from framesift.engines.cache import EngineCache

IMGSZ = 160

# supervision's dataset loaders create tqdm bars; tqdm's monitor thread would outlive the test
import tqdm  # noqa: E402

tqdm.tqdm.monitor_interval = 0


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> EngineCache:
    return EngineCache(tmp_path_factory.mktemp("engines"))


def hashed_text_encoder(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for CLIP's text tower: L2-normalised vectors seeded by the text."""
    out = []
    for t in texts:
        rng = np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
        v = rng.standard_normal(512).astype(np.float32)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


@pytest.fixture(scope="session")
def world_model():  # type: ignore[no-untyped-def]
    """Reference YOLO-World v2 S (random weights) whose class logits are not pushed to ~0."""
    pytest.importorskip("ultralytics")
    import torch

    from framesift.engines.models.yolo_world import build_reference

    torch.manual_seed(0)
    model = build_reference("s", 2)
    for h in model.model[-1].cv4:  # bias -10 at init would make every score ~0
        h.bias.data.fill_(0.0)
    return model


@pytest.fixture(scope="session")
def sam_model():  # type: ignore[no-untyped-def]
    pytest.importorskip("mobile_sam")
    import torch

    from framesift.engines.models.sam import build_reference

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_reference("vit_t")
