"""EngineConfig and build_embedder: pixel, explicit CLIP, and auto's offline fallback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from framesift.config.engines import EngineConfig
from framesift.engines.factory import build_embedder, find_local_clip_weights


def _pixel_available() -> bool:
    try:
        import framesift.engines.models.pixel  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


needs_pixel = pytest.mark.skipif(
    not _pixel_available(), reason="framesift.engines.models.pixel not written yet"
)


@pytest.fixture
def no_clip_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Empty open_clip / Hugging Face caches (HOME and the hub cache point at an empty folder)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    try:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    except ImportError:
        pass
    return tmp_path


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Warnings from framesift loggers (which may not propagate to the root logger)."""
    got: list[logging.LogRecord] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    h = H(level=logging.WARNING)
    logger = logging.getLogger("framesift")
    logger.addHandler(h)
    try:
        yield got
    finally:
        logger.removeHandler(h)


def test_config_defaults_and_validation() -> None:
    cfg = EngineConfig()
    assert (cfg.model, cfg.runtime, cfg.device, cfg.precision, cfg.max_batch) == (
        "auto",
        "auto",
        "auto",
        "auto",
        64,
    )
    EngineConfig(model="ViT-B-32", pretrained="openai", device="cuda:1", precision="fp16")
    with pytest.raises(ValidationError, match="only one of pretrained, checkpoint, onnx"):
        EngineConfig(model="ViT-B-32", pretrained="openai", checkpoint="/x.pt")
    with pytest.raises(ValidationError, match="model 'pixel' has no weights"):
        EngineConfig(model="pixel", checkpoint="/x.pt")
    with pytest.raises(ValidationError):
        EngineConfig(runtime="tflite")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        EngineConfig(device="gpu")
    with pytest.raises(ValidationError):
        EngineConfig(unknown_key=1)  # type: ignore[call-arg]


@needs_pixel
def test_pixel() -> None:
    from framesift.engines.models.pixel import PixelEmbedder

    emb = build_embedder(EngineConfig(model="pixel"))
    assert isinstance(emb, PixelEmbedder)
    out = emb.embed_images([np.zeros((60, 80, 3), np.uint8)])
    assert out.shape == (1, emb.dim)


@needs_pixel
def test_auto_without_weights_falls_back_to_pixel_with_one_warning(
    no_clip_weights: Path, records: list[logging.LogRecord]
) -> None:
    from framesift.engines.models.pixel import PixelEmbedder

    emb = build_embedder(EngineConfig())
    assert isinstance(emb, PixelEmbedder)
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "pixel" in msg and "engine.pretrained" in msg and "engine.checkpoint" in msg


def test_cached_open_clip_weights_are_found_without_network(no_clip_weights: Path) -> None:
    pytest.importorskip("open_clip")
    assert find_local_clip_weights("ViT-B-32") is None
    # open_clip's URL cache: ~/.cache/clip/<basename of the tag's url>
    cache = no_clip_weights / ".cache" / "clip"
    cache.mkdir(parents=True)
    (cache / "ViT-B-32.pt").write_bytes(b"weights")
    assert find_local_clip_weights("ViT-B-32") == "openai"


def test_explicit_clip_model_from_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from framesift.engines.models.clip import ClipEmbedder
    from tests.engines.clip_helpers import TINY, tiny_model

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_model(seed=5).state_dict(), ckpt)
    emb = build_embedder(
        EngineConfig(model=TINY, checkpoint=str(ckpt), runtime="torch", device="cpu", max_batch=4)
    )
    try:
        assert isinstance(emb, ClipEmbedder) and emb.supports_text and emb.dim == 32 and emb.max_batch == 4
        assert emb.embed_texts(["a"]).shape == (1, 32)
    finally:
        emb.close()


def test_auto_with_runtime_choice(tmp_path: Path) -> None:
    """An explicit open_clip name with its runtime left on auto picks the best runtime here."""
    torch = pytest.importorskip("torch")
    from framesift.engines import plan
    from tests.engines.clip_helpers import TINY, tiny_model

    def select_runtime() -> plan.EnginePlan:
        return plan.plan_engine("clip", precision="fp32")

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_model().state_dict(), ckpt)
    common = dict(model=TINY, checkpoint=str(ckpt), cache_dir=str(tmp_path / "cache"))
    emb = build_embedder(EngineConfig(**common, precision="fp32"))  # type: ignore[arg-type]
    try:
        assert emb.name.endswith("@" + select_runtime().runtime)  # type: ignore[attr-defined]
    finally:
        emb.close()
    # precision auto: bf16 on torch where the CPU has native bf16, else the fp32 choice above
    emb = build_embedder(EngineConfig(**common))  # type: ignore[arg-type]
    try:
        if plan.cpu_bf16_kind():
            assert emb.name.endswith("@torch") and emb.precision == "bf16"  # type: ignore[attr-defined]
        else:
            assert emb.name.endswith("@" + select_runtime().runtime)  # type: ignore[attr-defined]
    finally:
        emb.close()


def test_precision_auto_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_embedder's precision comes from the engine plan of CLIP (the same rules as before)."""
    pytest.importorskip("torch")
    from framesift.engines import plan

    def resolve(cfg: EngineConfig) -> str:
        onnx = plan.Artefact(cfg.onnx, "onnx") if cfg.onnx else None
        return plan.plan_engine(
            "clip", runtime=cfg.runtime, device=cfg.device, precision=cfg.precision, artefact=onnx
        ).precision

    for explicit in ("fp32", "bf16"):
        assert resolve(EngineConfig(model="ViT-B-32", precision=explicit)) == explicit
    monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: "AVX512-BF16")
    assert resolve(EngineConfig(model="ViT-B-32", device="cpu")) == "bf16"
    # onnxruntime has no bf16 path: auto stays fp32 there, and for ONNX files
    assert resolve(EngineConfig(model="ViT-B-32", device="cpu", runtime="onnxruntime")) == "fp32"
    assert resolve(EngineConfig(model="auto", onnx="/x/image.onnx", device="cpu")) == "fp32"
    monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: None)
    assert resolve(EngineConfig(model="ViT-B-32", device="cpu")) == "fp32"
