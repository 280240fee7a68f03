"""The logic that decides and calls on the GPU paths, checked here without a GPU.

What only a GPU machine checks is in tests/gpu (``-m gpu``) and bench/gpu_check.sh: TensorRT builds
and runs (no TensorRT here or on the project's GPU machine), ONNX Runtime's CUDA provider, NVDEC.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from framesift.engines.models.detect_post import as_tensor_image, letterbox
from framesift.engines.runtimes.base import TensorSpec
from framesift.engines.runtimes.tensorrt_runtime import batch_slices, precision_mode, profile_for
from framesift.engines.runtimes.torch_runtime import TorchRuntime, batch_bucket
from framesift.errors import EngineError


@pytest.mark.parametrize(
    ("version", "precision", "typed", "flag", "onnx"),
    [
        ("10.13.3.9", "fp16", False, "FP16", "fp32"),
        ("10.0.1", "bf16", False, "BF16", "fp32"),
        ("10.0.1", "fp32", False, None, "fp32"),
        ("11.0.0", "fp16", True, None, "fp16"),
        ("11.4.1", "fp32", True, None, "fp32"),
    ],
)
def test_tensorrt_precision_recipe_follows_the_major_version(
    version: str, precision: str, typed: bool, flag: str | None, onnx: str
) -> None:
    mode = precision_mode(version, precision)  # type: ignore[arg-type]
    assert (mode.strongly_typed, mode.builder_flag, mode.onnx_precision) == (typed, flag, onnx)


def test_tensorrt_11_bf16_is_one_clear_error() -> None:
    with pytest.raises(EngineError, match=r"tensorrt 11\.1\.0: bf16 .* use precision: fp16"):
        precision_mode("11.1.0", "bf16")


def test_tensorrt_profile_reaches_the_configured_max_batch() -> None:
    assert profile_for(64, 4096) == {"min": 1, "opt": 64, "max": 4096}
    assert profile_for(4096, 4096)["max"] == 4096
    assert profile_for(512, 16) == {"min": 1, "opt": 16, "max": 16}


def test_batches_over_the_profile_are_split_not_refused() -> None:
    assert batch_slices(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_slices(4, 4) == [(0, 4)]
    assert batch_slices(0, 4) == [(0, 0)]
    with pytest.raises(ValueError):
        batch_slices(3, 0)


def test_batch_buckets_are_few_and_cover_every_size() -> None:
    sizes = range(1, 4097)
    buckets = {batch_bucket(n) for n in sizes}
    assert len(buckets) == 13
    assert all(batch_bucket(n) >= n and batch_bucket(n) < 2 * n for n in sizes)


class _Rowwise(nn.Module):
    """Per-sample maths with a batch-norm-free reduction: padding must not leak into real rows."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(x) @ text.T, text.sum(0, keepdim=True)


def test_bucketed_runs_equal_unbucketed_ones_and_keep_non_batch_axes() -> None:
    torch.manual_seed(0)
    module = _Rowwise()
    specs_in = [TensorSpec("x", "float", ("batch", 6)), TensorSpec("text", "float", ("k", 3))]
    specs_out = [TensorSpec("y", "float", ("batch", "k")), TensorSpec("t", "float", (1, 3))]
    plain = TorchRuntime(module, specs_in, specs_out, bucket_batches=False)
    bucketed = TorchRuntime(module, specs_in, specs_out, bucket_batches=True)
    text = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    for n in (1, 3, 5, 7):
        x = np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)
        a, b = plain.run({"x": x, "text": text}), bucketed.run({"x": x, "text": text})
        assert b["y"].shape == (n, 5) and b["t"].shape == (1, 3)
        np.testing.assert_allclose(a["y"], b["y"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a["t"], b["t"], rtol=1e-6, atol=1e-6)


def test_frames_as_tensors_reach_the_detector_preprocessing() -> None:
    """Detectors take frames as numpy or torch tensors alike (np.asarray of a CUDA tensor raises;
    on CPU, equal results prove the tensor branch is the same maths)."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    ro = frames[0].copy()
    ro.flags.writeable = False
    assert torch.equal(as_tensor_image(ro, "cpu"), torch.from_numpy(frames[0]))
    as_np, _ = letterbox(frames, 32, device="cpu")
    as_t, _ = letterbox([torch.from_numpy(f) for f in frames], 32, device="cpu")
    assert (as_np - as_t).abs().max().item() <= 1.0 / 255.0 + 1e-6


def test_two_onnxruntime_wheels_are_named_with_the_fix() -> None:
    from framesift.engines.runtimes import installed_ort_distributions, ort_clash

    assert ort_clash(["onnxruntime"]) is None
    msg = ort_clash(["onnxruntime", "onnxruntime-gpu"])
    assert msg is not None and "overwrite each other" in msg
    assert msg.endswith("pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")
    assert "onnxruntime" in installed_ort_distributions()  # this environment's own wheel, read for real


def test_extras_never_install_two_onnxruntime_wheels() -> None:
    from pathlib import Path

    import tomllib

    extras = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for a in extras:
        for b in ("clip", "gpu", "gpu-cuda13"):
            names = {
                r.split(">")[0].split("=")[0].split("<")[0].strip() for r in extras[a] + extras.get(b, [])
            }
            assert not {"onnxruntime", "onnxruntime-gpu"} <= names, (a, b)
    assert any(r.startswith("tensorrt") and "<11" in r for r in extras["tensorrt"])
