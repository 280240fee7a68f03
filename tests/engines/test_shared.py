"""Shared engines: one instance per key, reference-counted close; the shared CLIP text engine equals
open_clip's ``encode_text`` + L2 normalisation on the same weights."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from framesift.engines import shared
from framesift.engines.shared import ClipKey, acquire, clip_text_engine, clip_weights, shared_count
from framesift.errors import EngineError

TEXTS = ["a forklift", "a person in a hi-vis vest", "a red car"]


class _Engine:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_same_key_same_instance_closed_with_the_last_lease() -> None:
    built: list[_Engine] = []

    def build() -> _Engine:
        built.append(_Engine())
        return built[-1]

    a = acquire(("test", 1), build)
    b = acquire(("test", 1), build)
    other = acquire(("test", 2), build)
    assert a.engine is b.engine and other.engine is not a.engine and len(built) == 2
    assert shared_count(("test", 1)) == 2
    a.close()
    a.close()  # a lease releases once
    assert shared_count(("test", 1)) == 1 and built[0].closed == 0
    with b:
        pass
    assert shared_count(("test", 1)) == 0 and built[0].closed == 1
    c = acquire(("test", 1), build)  # after the last close: a fresh engine
    assert c.engine is built[2]
    for lease in (c, other):
        lease.close()


def test_concurrent_askers_get_one_build() -> None:
    built: list[_Engine] = []
    leases: list[shared.Lease[_Engine]] = []
    start = threading.Barrier(4)

    def build() -> _Engine:
        built.append(_Engine())
        return built[-1]

    def ask() -> None:
        start.wait()
        leases.append(acquire(("test", "concurrent"), build))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and {id(lease.engine) for lease in leases} == {id(built[0])}
    for lease in leases:
        lease.close()
    assert built[0].closed == 1


def test_clip_weights_parses_tags_paths_and_none(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.bin"
    ckpt.write_bytes(b"x")
    assert clip_weights("openai") == ("openai", None)
    assert clip_weights(str(ckpt)) == (None, str(ckpt))
    assert clip_weights("models/missing.pt") == (None, "models/missing.pt")  # a path: reported as missing
    assert clip_weights(None) == clip_weights("none") == (None, None)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    pytest.importorskip("open_clip")
    from tests.engines.clip_helpers import tiny_model

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(tiny_model(seed=11).state_dict(), path)
    return path


def _reference(texts: list[str], seed: int | None) -> np.ndarray:
    """open_clip's own encode_text + L2 normalisation on the tiny model (``seed`` None: the weights
    framesift gives a model without pretrained weights)."""
    import open_clip
    import torch

    from framesift.engines.models.clip_weights import RANDOM_SEED
    from tests.engines.clip_helpers import TINY, tiny_model

    net = tiny_model(seed=RANDOM_SEED if seed is None else seed)
    with torch.no_grad():
        feats = net.encode_text(open_clip.get_tokenizer(TINY)(texts))
    return torch.nn.functional.normalize(feats, dim=-1).numpy()


def test_clip_text_engine_is_built_once_and_equals_open_clip(tiny_ckpt: Path, tmp_path: Path) -> None:
    from framesift.engines.models.clip import ClipEmbedder
    from tests.engines.clip_helpers import TINY

    a = clip_text_engine(TINY, str(tiny_ckpt), device="cpu", cache_dir=str(tmp_path))
    b = clip_text_engine(TINY, str(tiny_ckpt), device="auto", precision="fp32", cache_dir=str(tmp_path))
    try:
        assert isinstance(a.engine, ClipEmbedder) and a.engine is b.engine  # same plan, same weights
        assert a.key == ClipKey(TINY, a.key.weights, "torch", "cpu", "fp32")  # type: ignore[attr-defined]
        assert shared_count(a.key) == 2
        emb = a(TEXTS)
        assert emb.dtype == np.float32 and emb.shape == (3, 32)
        np.testing.assert_allclose(emb, _reference(TEXTS, seed=11), atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
        # text only: no image tower, but the identity of the full model
        assert a.engine.image_rt is None and a.engine._net.visual is None
        with pytest.raises(EngineError, match="text-only"):
            a.engine.embed_images([np.zeros((8, 8, 3), np.uint8)])
        full = ClipEmbedder(TINY, checkpoint=str(tiny_ckpt), runtime="torch", device="cpu")
        try:
            assert a.model_id == full.model_id and a.model_id.startswith(f"clip:{TINY}/tiny.pt#")
            np.testing.assert_allclose(full.embed_texts(TEXTS), emb, atol=1e-6)
        finally:
            full.close()
    finally:
        a.close()
        b.close()
    assert shared_count(a.key) == 0


def test_random_clip_text_engine_is_deterministic_and_equals_open_clip() -> None:
    pytest.importorskip("open_clip")
    from tests.engines.clip_helpers import TINY

    with clip_text_engine(TINY, None, device="cpu") as lease:
        np.testing.assert_allclose(lease(TEXTS), _reference(TEXTS, seed=None), atol=1e-6)
        assert lease.model_id.startswith(f"clip:{TINY}/random#")


def test_clip_text_engine_on_onnxruntime_equals_torch(tiny_ckpt: Path, tmp_path: Path) -> None:
    """Other plans give other instances, built through the same plan (and equal results)."""
    pytest.importorskip("onnxruntime")
    from tests.engines.clip_helpers import TINY

    with (
        clip_text_engine(TINY, str(tiny_ckpt), device="cpu") as on_torch,
        clip_text_engine(
            TINY, str(tiny_ckpt), runtime="onnxruntime", device="cpu", cache_dir=str(tmp_path)
        ) as on_ort,
    ):
        assert on_ort.engine is not on_torch.engine and on_ort.engine.runtime_name == "onnxruntime"
        assert "text.onnx" in on_ort.engine.artefacts and "image.onnx" not in on_ort.engine.artefacts
        np.testing.assert_allclose(on_ort(TEXTS), on_torch(TEXTS), atol=1e-5)
