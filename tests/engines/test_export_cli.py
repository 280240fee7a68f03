"""``framesift export clip``: builds and caches engines, prints where, copies them with --out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from framesift.cli import main  # noqa: E402
from framesift.engines.models.clip import ClipEmbedder  # noqa: E402
from tests.engines.clip_helpers import TINY, tiny_model  # noqa: E402


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    torch.save(tiny_model(seed=7).state_dict(), path)
    return path


def test_export_builds_caches_and_copies(
    tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    argv = ["export", "clip", "--model", TINY, "--checkpoint", str(ckpt), "--runtime", "onnxruntime"]
    argv += ["--device", "cpu", "--cache-dir", str(cache), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"cache    {cache}" in printed
    cached = {
        line.split()[0]: Path(line.split()[1])
        for line in printed.splitlines()
        if line.startswith(("image.", "text."))
    }
    assert set(cached) == {"image.onnx", "text.onnx"} and all(
        p.is_relative_to(cache) for p in cached.values()
    )
    assert (out / "image.onnx").is_file() and (out / "text.onnx").is_file()
    mtimes = {k: p.stat().st_mtime_ns for k, p in cached.items()}

    # A second export of the same weights reuses the cache.
    assert main(argv) == 0
    assert {k: p.stat().st_mtime_ns for k, p in cached.items()} == mtimes

    # The exported directory is a self-describing engine: same embeddings as the checkpoint.
    from_onnx = ClipEmbedder(onnx=str(out), device="cpu", cache_dir=str(cache))
    from_ckpt = ClipEmbedder(TINY, checkpoint=str(ckpt), runtime="torch", device="cpu")
    try:
        img = [np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)]
        np.testing.assert_allclose(from_onnx.embed_images(img), from_ckpt.embed_images(img), atol=1e-5)
        np.testing.assert_allclose(
            from_onnx.embed_texts(["a cat"]), from_ckpt.embed_texts(["a cat"]), atol=1e-5
        )
        assert from_onnx.logit_scale == pytest.approx(from_ckpt.logit_scale)
    finally:
        from_onnx.close()
        from_ckpt.close()


@pytest.mark.parametrize(
    ("argv", "code", "expect"),
    [
        (["export"], 2, "say what to export"),
        (["export", "clip", "--model", TINY], 2, "give --pretrained TAG"),
        (["export", "clip", "--model", "ViT-B-99", "--random-weights"], 2, "unknown CLIP model 'ViT-B-99'"),
    ],
)
def test_export_errors(argv: list[str], code: int, expect: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert expect in err and len(err.strip().splitlines()) == 1


def test_export_tensorrt_unavailable_names_alternatives(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from framesift.engines.runtimes import available_runtimes

    if not available_runtimes()["tensorrt"].startswith("unavailable"):
        pytest.skip("TensorRT installed")
    argv = ["export", "clip", "--model", TINY, "--random-weights", "--runtime", "tensorrt"]
    assert main([*argv, "--cache-dir", str(tmp_path)]) == 2  # the engine plan refuses: ConfigError
    err = capsys.readouterr().err
    assert "runtime 'tensorrt'" in err and "available: torch, onnxruntime" in err
