"""Runtime discovery, ``auto`` selection (the engine plan of CLIP), and the runtimes on a small real graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from framesift.engines.plan import MODELS, EnginePlan, plan_engine
from framesift.engines.runtimes import available_runtimes, runtime_infos
from framesift.engines.runtimes.ort_runtime import OrtRuntime, choose_providers
from framesift.errors import ConfigError, EngineError

AUTO_ORDER = MODELS["clip"].order


def select_runtime(runtime: str = "auto", device: str = "auto") -> EnginePlan:
    """CLIP's plan in fp32 (the runtime choice without the precision rules)."""
    return plan_engine("clip", runtime=runtime, device=device, precision="fp32")


torch = pytest.importorskip("torch")


def test_available_runtimes_reports_every_runtime() -> None:
    av = available_runtimes()
    assert set(av) == {"torch", "torch-cuda", "onnxruntime", "onnxruntime-cuda", "tensorrt", "openvino"}
    assert av["torch"] == torch.__version__
    for name, detail in av.items():
        assert detail, name
    if not torch.cuda.is_available():
        assert av["torch-cuda"].startswith("unavailable: ")
        assert av["tensorrt"].startswith("unavailable: ")


def test_auto_picks_the_fastest_available() -> None:
    sel = select_runtime("auto", "auto")
    usable = [(i.runtime, i.device) for i in runtime_infos() if i.available]
    first = next(rd for rd in AUTO_ORDER if rd in usable)
    assert (sel.runtime, sel.device) == first
    assert "fastest available" in sel.reason
    if not torch.cuda.is_available():
        # measured on CPU (bench/clip_throughput.py): onnxruntime beats eager torch for CLIP
        assert (sel.runtime, sel.device) == ("onnxruntime", "cpu")
        assert "tensorrt unavailable" not in sel.reason or "unavailable" in sel.reason


def test_auto_order_puts_gpu_first_and_onnxruntime_before_torch_on_cpu() -> None:
    assert AUTO_ORDER[0] == ("tensorrt", "cuda")
    assert AUTO_ORDER.index(("onnxruntime", "cpu")) < AUTO_ORDER.index(("torch", "cpu"))
    assert AUTO_ORDER.index(("torch", "cuda")) < AUTO_ORDER.index(("onnxruntime", "cpu"))


def test_explicit_runtime_and_device() -> None:
    assert select_runtime("torch", "cpu").runtime == "torch"
    assert select_runtime("onnxruntime", "cpu").reason == "requested"
    assert select_runtime("onnxruntime", "cpu").precision == "fp32"


@pytest.mark.parametrize(
    ("runtime", "device", "expect"),
    [("nope", "auto", "unknown runtime 'nope'"), ("torch", "tpu", "unknown device 'tpu'")],
)
def test_unknown_names(runtime: str, device: str, expect: str) -> None:
    with pytest.raises(ConfigError, match=expect):
        select_runtime(runtime, device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_request_without_cuda_names_what_is_available() -> None:
    with pytest.raises(ConfigError) as exc:
        select_runtime("auto", "cuda")
    msg = str(exc.value)
    ov = "" if available_runtimes()["openvino"].startswith("unavailable") else ", openvino"
    assert "not available" in msg and msg.endswith(f"available: torch, onnxruntime{ov}")


def test_tensorrt_build_without_tensorrt_is_a_clear_error(tmp_path: Path) -> None:
    if not available_runtimes()["tensorrt"].startswith("unavailable"):
        pytest.skip("TensorRT installed")
    from framesift.engines.runtimes.tensorrt_runtime import build_engine

    with pytest.raises(EngineError, match=r"tensorrt package is not installed.*framesift\[tensorrt\]"):
        build_engine(tmp_path / "x.onnx", precision="fp16", min_batch=1, opt_batch=8, max_batch=64)


def test_provider_preference() -> None:
    allp = [
        "AzureExecutionProvider",
        "CPUExecutionProvider",
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
    ]
    assert choose_providers("cuda", allp) == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers("cpu", allp) == ["CPUExecutionProvider"]
    with pytest.raises(EngineError, match="pip install onnxruntime-gpu"):
        choose_providers("cuda", ["CPUExecutionProvider"])


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(image).mean(dim=(2, 3)))


def test_torch_and_onnxruntime_agree_on_a_graph(tmp_path: Path) -> None:
    from framesift.engines.runtimes.base import TensorSpec
    from framesift.engines.runtimes.torch_runtime import TorchRuntime

    torch.manual_seed(0)
    net = _Net().eval()
    x = torch.randn(4, 3, 16, 16)
    path = tmp_path / "net.onnx"
    from framesift.engines.export import export_onnx

    used = export_onnx(net, (x,), path, input_names=["image"], output_names=["out"], metadata={"k": "v"})
    assert used == "dynamo"
    with torch.no_grad():
        ref = net(x).numpy()
    ort_rt = OrtRuntime(path, device="cpu", threads=1)
    assert [s.name for s in ort_rt.inputs] == ["image"] and [s.name for s in ort_rt.outputs] == ["out"]
    t_rt = TorchRuntime(
        net, [TensorSpec("image", "float", ("batch", 3, 16, 16))], [TensorSpec("out", "float", ("batch", 5))]
    )
    for feeds in ({"image": x.numpy()}, {"image": x}):
        np.testing.assert_allclose(ort_rt.run(feeds)["out"], ref, atol=1e-5)
        np.testing.assert_allclose(t_rt.run(feeds)["out"], ref, atol=1e-6)
    assert isinstance(t_rt.run({"image": x}, as_torch=True)["out"], torch.Tensor)
    np.testing.assert_allclose(
        ort_rt.run({"image": x.numpy()[:1]})["out"], ref[:1], atol=1e-5
    )  # dynamic batch
    with pytest.raises(EngineError, match="missing inputs"):
        ort_rt.run({"other": x.numpy()})
    ort_rt.close()
    t_rt.close()


def test_ort_missing_file_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not found"):
        OrtRuntime(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(EngineError, match="cannot load"):
        OrtRuntime(bad)


def test_engine_logs_which_runtime_and_why(tmp_path: Path) -> None:
    import logging

    from framesift.engines.models.clip import ClipEmbedder
    from tests.engines.clip_helpers import TINY, tiny_model

    got: list[str] = []

    class H(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    logger = logging.getLogger("framesift.engines.clip")
    h, old = H(level=logging.INFO), logger.level
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    try:
        emb = ClipEmbedder(TINY, torch_model=tiny_model(), cache_dir=str(tmp_path))
        emb.close()
    finally:
        logger.removeHandler(h)
        logger.setLevel(old)
    sel = select_runtime()  # ClipEmbedder's default precision is fp32
    line = next(m for m in got if "— runtime" in m)
    assert f"runtime {sel.runtime}: {sel.reason}" in line and "fastest available" in line
