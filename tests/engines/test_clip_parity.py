"""Same random weights → torch and onnxruntime engines agree with the reference open_clip model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from framesift.engines.models.clip import ClipEmbedder  # noqa: E402
from framesift.frame import Frame  # noqa: E402
from tests.engines.clip_helpers import TINY, cosine_rows, tiny_model  # noqa: E402

TEXTS = ["a photo of a cat.", "a red car on a road", "", "an extremely long prompt " * 20]
LABELS = ["cat", "dog", "car"]
TEMPLATES = ("a photo of a {}.", "a blurry photo of a {}.")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def model() -> object:
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


@pytest.fixture(scope="module", params=["torch", "onnxruntime", "openvino"])
def engine(request: pytest.FixtureRequest, model: object, cache_dir: Path) -> object:
    emb = ClipEmbedder(TINY, torch_model=model, runtime=request.param, device="cpu", cache_dir=str(cache_dir))
    yield emb
    emb.close()


def _frames(frames_by_size: dict) -> list[np.ndarray]:
    return [f for fs in frames_by_size.values() for f in fs[:2]]


def _reference_images(model: object, images: list[np.ndarray]) -> np.ndarray:
    """open_clip's own path: its PIL transform, then encode_image, then L2-normalise."""
    tf = open_clip.image_transform(model.visual.image_size, is_train=False)  # type: ignore[attr-defined]
    x = torch.stack([tf(Image.fromarray(im)) for im in images])
    with torch.no_grad():
        return torch.nn.functional.normalize(model.encode_image(x), dim=-1).numpy()  # type: ignore[attr-defined]


def _reference_texts(model: object, texts: list[str]) -> np.ndarray:
    tok = open_clip.get_tokenizer(TINY)
    with torch.no_grad():
        return torch.nn.functional.normalize(model.encode_text(tok(texts)), dim=-1).numpy()  # type: ignore[attr-defined]


def test_image_embeddings_match_reference(engine: ClipEmbedder, model: object, frames_by_size: dict) -> None:
    images = _frames(frames_by_size)
    got = engine.embed_images(images)
    assert got.shape == (len(images), 32) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    ref = _reference_images(model, images)
    assert cosine_rows(got, ref).min() >= 0.999


def test_runtime_alone_matches_reference_on_identical_input(
    engine: ClipEmbedder, model: object, frames_by_size: dict
) -> None:
    x = engine.preprocess(_frames(frames_by_size))
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_image(x), dim=-1).numpy()  # type: ignore[attr-defined]
    got = engine.embed_images(_frames(frames_by_size))
    assert cosine_rows(got, ref).min() >= 0.9999
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_text_embeddings_match_reference(engine: ClipEmbedder, model: object) -> None:
    got = engine.embed_texts(TEXTS)
    ref = _reference_texts(model, TEXTS)
    assert got.shape == (len(TEXTS), 32)
    assert cosine_rows(got, ref).min() >= 0.999


def test_classify_matches_reference(engine: ClipEmbedder, model: object, frames_by_size: dict) -> None:
    images = _frames(frames_by_size)
    probs = engine.classify(images, LABELS, TEMPLATES)
    assert probs.shape == (len(images), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    img = _reference_images(model, images)
    txt = _reference_texts(model, [t.format(lb) for lb in LABELS for t in TEMPLATES])
    txt = txt.reshape(len(LABELS), len(TEMPLATES), -1).mean(axis=1)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    scale = float(model.logit_scale.detach().exp())  # type: ignore[attr-defined]
    ref = torch.softmax(torch.from_numpy(scale * img @ txt.T), dim=1).numpy()
    np.testing.assert_allclose(probs, ref, atol=2e-3)


def test_frames_are_accepted_like_arrays(engine: ClipEmbedder, frames_by_size: dict) -> None:
    images = frames_by_size[(320, 240)]
    from fractions import Fraction

    frames = [Frame("cam", i, i, Fraction(1, 25), 0.0, im.copy()) for i, im in enumerate(images)]
    np.testing.assert_array_equal(engine.embed_images(frames), engine.embed_images(images))


def test_batch_invariance_across_mixed_sources(engine: ClipEmbedder, frames_by_size: dict) -> None:
    a, b, c = frames_by_size[(320, 240)], frames_by_size[(1280, 720)], frames_by_size[(100, 100)]
    mixed = [a[0], b[0], c[0], a[1], b[1], c[1], a[2]]
    batch = engine.embed_images(mixed)
    alone = np.concatenate([engine.embed_images([im]) for im in mixed])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_chunking_beyond_max_batch(model: object, cache_dir: Path, frames_by_size: dict) -> None:
    images = _frames(frames_by_size)
    small = ClipEmbedder(
        TINY, torch_model=model, runtime="onnxruntime", device="cpu", max_batch=3, cache_dir=str(cache_dir)
    )
    try:
        got = small.embed_images(images)
    finally:
        small.close()
    assert cosine_rows(got, _reference_images(model, images)).min() >= 0.999


def test_text_cache_is_bounded_and_reused(model: object, cache_dir: Path) -> None:
    emb = ClipEmbedder(TINY, torch_model=model, runtime="torch", device="cpu", text_cache_size=2)
    try:
        first = emb.embed_texts(["a", "b"])
        first[:] = 0  # callers get copies; the cache is not mutated through them
        assert np.linalg.norm(emb.embed_texts(["a", "b"]), axis=1).min() > 0.99
        for i in range(5):
            emb.embed_texts([f"prompt {i}"])
        assert len(emb._text_cache) == 2
    finally:
        emb.close()


def test_bf16_on_cpu_close_to_fp32(model: object, frames_by_size: dict) -> None:
    images = _frames(frames_by_size)
    emb = ClipEmbedder(TINY, torch_model=model, runtime="torch", device="cpu", precision="bf16")
    try:
        got = emb.embed_images(images)
    finally:
        emb.close()
    assert cosine_rows(got, _reference_images(model, images)).min() >= 0.99


@pytest.mark.slow  # dynamo export of ViT-B-32 takes 15-45 s on a 2-core machine
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_real_vit_b_32_architecture(tmp_path: Path, frames_by_size: dict, runtime: str) -> None:
    """The real ViT-B-32 graph (random weights): export + onnxruntime / OpenVINO equal open_clip."""
    t0 = time.monotonic()
    torch.manual_seed(0)
    net = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    images = [frames_by_size[(1280, 720)][0], frames_by_size[(240, 320)][0]]
    emb = ClipEmbedder("ViT-B-32", torch_model=net, runtime=runtime, device="cpu", cache_dir=str(tmp_path))
    try:
        got = emb.embed_images(images)
        texts = emb.embed_texts(TEXTS) if runtime == "openvino" else None
    finally:
        emb.close()
    assert got.shape == (2, 512)
    assert cosine_rows(got, _reference_images(net, images)).min() >= 0.999
    if texts is not None:
        tok = open_clip.get_tokenizer("ViT-B-32")
        with torch.no_grad():
            ref = torch.nn.functional.normalize(net.encode_text(tok(TEXTS)), dim=-1).numpy()
        assert cosine_rows(texts, ref).min() >= 0.999
    print(f"ViT-B-32 export + run: {time.monotonic() - t0:.1f}s")


# ---------------------------------------------------------------------- GPU (skipped without CUDA)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torch_cuda_low_precision(model: object, frames_by_size: dict, precision: str) -> None:
    images = _frames(frames_by_size)
    emb = ClipEmbedder(TINY, torch_model=model, runtime="torch", device="cuda", precision=precision)  # type: ignore[arg-type]
    try:
        got = emb.embed_images(images)
        txt = emb.embed_texts(TEXTS)
    finally:
        emb.close()
    assert cosine_rows(got, _reference_images(model, images)).min() >= 0.99
    assert cosine_rows(txt, _reference_texts(model, TEXTS)).min() >= 0.99


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("option", ["cuda_graphs", "compile"])
def test_torch_cuda_graphs_and_compile(model: object, frames_by_size: dict, option: str) -> None:
    images = _frames(frames_by_size)
    emb = ClipEmbedder(TINY, torch_model=model, runtime="torch", device="cuda", **{option: True})  # type: ignore[arg-type]
    try:
        a = emb.embed_images(images)
        b = emb.embed_images(images)  # replayed graph / cached compiled code
        c = emb.embed_images(images[:3])  # another batch shape: another graph / recompilation
    finally:
        emb.close()
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(c, a[:3], atol=1e-4)
    assert cosine_rows(a, _reference_images(model, images)).min() >= 0.999


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("runtime", ["onnxruntime", "tensorrt"])
def test_gpu_runtimes_fp16(model: object, frames_by_size: dict, tmp_path: Path, runtime: str) -> None:
    from framesift.engines.runtimes import available_runtimes

    key = "tensorrt" if runtime == "tensorrt" else "onnxruntime-cuda"
    if available_runtimes()[key].startswith("unavailable"):
        pytest.skip(f"{key}: {available_runtimes()[key]}")
    images = _frames(frames_by_size)
    emb = ClipEmbedder(
        TINY, torch_model=model, runtime=runtime, device="cuda", precision="fp16", cache_dir=str(tmp_path)
    )
    try:
        got = emb.embed_images(images)
        txt = emb.embed_texts(TEXTS)
    finally:
        emb.close()
    assert cosine_rows(got, _reference_images(model, images)).min() >= 0.99
    assert cosine_rows(txt, _reference_texts(model, TEXTS)).min() >= 0.99
