"""Bad input → one clear line naming what is available: ConfigError (exit 2) for model names, tags
and checkpoint files the user gave and for runtime/device/precision requests the engine plan
refuses; EngineError for exported graphs that do not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from framesift.engines.models.clip import ClipEmbedder  # noqa: E402
from framesift.engines.models.clip_onnx import validate_onnx  # noqa: E402
from framesift.engines.runtimes import available_runtimes  # noqa: E402
from framesift.errors import ConfigError, EngineError  # noqa: E402
from tests.engines.clip_helpers import TINY, TINY_D48, register_tiny, tiny_model  # noqa: E402


def _one_line(exc: pytest.ExceptionInfo[EngineError] | pytest.ExceptionInfo[ConfigError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(ConfigError) as exc:
        ClipEmbedder("ViT-B-23", runtime="torch", device="cpu")
    msg = _one_line(exc)
    assert "unknown CLIP model 'ViT-B-23'" in msg and "ViT-B-32" in msg


def test_unknown_pretrained_tag_lists_tags() -> None:
    with pytest.raises(ConfigError) as exc:
        ClipEmbedder("ViT-B-32", pretrained="nope", runtime="torch", device="cpu")
    msg = _one_line(exc)
    assert "unknown pretrained tag 'nope'" in msg and "openai" in msg


def test_missing_checkpoint_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "weights.pt"
    with pytest.raises(ConfigError) as exc:
        ClipEmbedder(TINY, checkpoint=str(missing), runtime="torch", device="cpu")
    msg = _one_line(exc)
    assert str(missing) in msg and "not found" in msg


def test_checkpoint_for_another_architecture(tmp_path: Path) -> None:
    register_tiny()
    ckpt = tmp_path / "d48.pt"
    torch.save(tiny_model(name=TINY_D48).state_dict(), ckpt)
    with pytest.raises(ConfigError) as exc:
        ClipEmbedder(TINY, checkpoint=str(ckpt), runtime="torch", device="cpu")
    assert str(ckpt) in _one_line(exc)


def test_local_checkpoint_loads_the_same_weights(tmp_path: Path) -> None:
    net = tiny_model(seed=3)
    ckpt = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), ckpt)
    emb = ClipEmbedder(TINY, checkpoint=str(ckpt), runtime="torch", device="cpu")
    try:
        img = np.full((48, 64, 3), 128, np.uint8)
        x = emb.preprocess([img])
        with torch.no_grad():
            ref = torch.nn.functional.normalize(net.encode_image(x), dim=-1).numpy()
        np.testing.assert_allclose(emb.embed_images([img]), ref, atol=1e-6)
        assert emb.info.pretrained == "tiny.pt"
    finally:
        emb.close()


@pytest.mark.parametrize("runtime", ["tensorrt"] + ([] if torch.cuda.is_available() else ["torch-cuda"]))
def test_unavailable_runtime_says_what_is_available(runtime: str) -> None:
    if runtime == "tensorrt" and not available_runtimes()["tensorrt"].startswith("unavailable"):
        pytest.skip("TensorRT is installed here")
    name, device = ("torch", "cuda") if runtime == "torch-cuda" else (runtime, "auto")
    with pytest.raises(ConfigError) as exc:
        ClipEmbedder(TINY, torch_model=tiny_model(), runtime=name, device=device)
    msg = _one_line(exc)
    assert "not available" in msg and "available: " in msg and "onnxruntime" in msg.split("available: ")[-1]


def test_fp16_onnxruntime_on_cpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="fp16 with onnxruntime needs a CUDA device"):
        ClipEmbedder(TINY, torch_model=tiny_model(), runtime="onnxruntime", device="cpu", precision="fp16")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """image/text ONNX of the tiny model (dim 32) and the image ONNX of the dim-48 model."""
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for name in (TINY, TINY_D48):
        emb = ClipEmbedder(
            name, torch_model=tiny_model(name=name), runtime="onnxruntime", device="cpu", cache_dir=str(cache)
        )
        emb.prepare(text=True)
        out[f"{name}/image"] = emb.artefacts["image.onnx"]
        out[f"{name}/text"] = emb.artefacts["text.onnx"]
        emb.close()
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())
    return dst


def test_onnx_export_loads_by_directory(exported: dict[str, Path], tmp_path: Path) -> None:
    _copy(exported[f"{TINY}/image"], tmp_path / "m" / "image.onnx")
    _copy(exported[f"{TINY}/text"], tmp_path / "m" / "text.onnx")
    emb = ClipEmbedder(onnx=str(tmp_path / "m"), runtime="auto", device="cpu", cache_dir=str(tmp_path / "c"))
    try:
        assert emb.dim == 32 and emb.runtime_name == "onnxruntime"
        assert emb.embed_texts(["a cat"]).shape == (1, 32)
        assert emb.embed_images([np.zeros((30, 40, 3), np.uint8)]).shape == (1, 32)
    finally:
        emb.close()


def test_onnx_without_text_tower_explains(exported: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(exported[f"{TINY}/image"], tmp_path / "image.onnx")
    emb = ClipEmbedder(onnx=str(path), runtime="onnxruntime", device="cpu")
    try:
        with pytest.raises(EngineError, match="no text tower"):
            emb.embed_texts(["a cat"])
    finally:
        emb.close()


def test_mismatched_onnx_text_tower_from_other_model(exported: dict[str, Path], tmp_path: Path) -> None:
    _copy(exported[f"{TINY}/image"], tmp_path / "image.onnx")
    _copy(exported[f"{TINY_D48}/text"], tmp_path / "text.onnx")
    with pytest.raises(EngineError) as exc:
        ClipEmbedder(onnx=str(tmp_path / "image.onnx"), runtime="onnxruntime", device="cpu")
    msg = _one_line(exc)
    assert "dim 48" in msg and "has 32" in msg


def test_mismatched_onnx_text_given_as_image(exported: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(exported[f"{TINY}/text"], tmp_path / "model.onnx")
    with pytest.raises(EngineError) as exc:
        ClipEmbedder(onnx=str(path), runtime="onnxruntime", device="cpu")
    msg = _one_line(exc)
    assert "mismatched CLIP image ONNX" in msg and "expected input 'image'" in msg and "'text'" in msg


def test_mismatched_onnx_foreign_graph(tmp_path: Path) -> None:
    path = tmp_path / "foreign.onnx"
    _write_matmul_onnx(path, "image", "image_embeds")
    with pytest.raises(EngineError) as exc:
        validate_onnx(path, "image")
    assert "not a framesift CLIP export" in _one_line(exc)


def test_mismatched_onnx_dim_metadata(exported: dict[str, Path], tmp_path: Path) -> None:
    import onnx

    m = onnx.load(str(exported[f"{TINY}/image"]))
    for p in m.metadata_props:
        if p.key == "framesift.embed_dim":
            p.value = "512"
    path = tmp_path / "image.onnx"
    onnx.save(m, str(path))
    with pytest.raises(EngineError) as exc:
        ClipEmbedder(onnx=str(path), runtime="onnxruntime", device="cpu")
    msg = _one_line(exc)
    assert "mismatched CLIP image ONNX" in msg and "embed_dim 512" in msg


def _write_matmul_onnx(path: Path, inp: str, out: str) -> None:
    """A valid ONNX graph that is not a CLIP tower: (batch, 8) @ (8, 4)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [inp, "w"], [out])],
        "foreign",
        [helper.make_tensor_value_info(inp, TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 4])],
        initializer=[w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "image.onnx"
    path.write_bytes(b"this is not protobuf at all \x00\xff")
    with pytest.raises(EngineError, match="not a readable ONNX file"):
        ClipEmbedder(onnx=str(path), runtime="onnxruntime", device="cpu")


def test_missing_onnx(tmp_path: Path) -> None:
    with pytest.raises(EngineError) as exc:
        ClipEmbedder(onnx=str(tmp_path / "nope.onnx"), runtime="onnxruntime", device="cpu")
    assert "not found" in _one_line(exc) and "framesift export clip" in str(exc.value)


def test_onnx_with_torch_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="runtime torch cannot run the ONNX file"):
        ClipEmbedder(onnx=str(tmp_path / "image.onnx"), runtime="torch", device="cpu")


def test_out_of_memory_retries_at_half_batch_then_names_engine() -> None:
    from framesift.engines.runtimes.base import Runtime

    emb = ClipEmbedder(TINY, torch_model=tiny_model(), runtime="torch", device="cpu", max_batch=8)
    real = emb.image_rt
    seen: list[int] = []

    class Limited(Runtime):
        """A real runtime that refuses batches above ``limit`` the way CUDA does."""

        name = "limited"

        def __init__(self, limit: int) -> None:
            super().__init__(device="cpu", precision="fp32")
            self.limit = limit

        inputs = property(lambda self: real.inputs)
        outputs = property(lambda self: real.outputs)

        def run(self, feeds, *, as_torch=False):  # type: ignore[no-untyped-def]
            n = len(next(iter(feeds.values())))
            seen.append(n)
            if n > self.limit:
                raise RuntimeError(f"CUDA out of memory. Tried to allocate {n} GiB")
            return real.run(feeds, as_torch=as_torch)

    imgs = [np.full((40, 40, 3), i * 20, np.uint8) for i in range(8)]
    try:
        ref = emb.embed_images(imgs)
        emb.image_rt = Limited(limit=4)
        seen.clear()
        np.testing.assert_allclose(emb.embed_images(imgs), ref, atol=1e-6)
        assert seen == [8, 4, 4]
        emb.image_rt = Limited(limit=2)
        with pytest.raises(EngineError) as exc:
            emb.embed_images(imgs)
        msg = _one_line(exc)
        assert emb.name in msg and "out of memory even at batch 4" in msg
    finally:
        emb.image_rt = real
        emb.close()


def test_pretrained_tag_offline_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HOME", str(tmp_path))  # empty open_clip URL cache
    try:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    except ImportError:
        pass
    with pytest.raises(EngineError) as exc:
        ClipEmbedder("ViT-B-32", pretrained="openai", runtime="torch", device="cpu")
    msg = _one_line(exc)
    assert "ViT-B-32/openai are not in the local cache" in msg and "checkpoint" in msg


def test_bf16_goes_to_torch_under_auto_and_is_refused_by_onnxruntime() -> None:
    emb = ClipEmbedder(TINY, torch_model=tiny_model(), runtime="auto", device="cpu", precision="bf16")
    try:
        assert emb.runtime_name == "torch" and emb.precision == "bf16"
    finally:
        emb.close()
    with pytest.raises(ConfigError, match="bf16 is not supported by onnxruntime"):
        ClipEmbedder(TINY, torch_model=tiny_model(), runtime="onnxruntime", device="cpu", precision="bf16")


def test_openvino_failure_at_inference_is_one_line() -> None:
    """OpenVINO's errors are chains of ``Exception from <file>:<line>:`` lines: the engine error
    keeps the cause, on one line."""
    if available_runtimes()["openvino"].startswith("unavailable"):
        pytest.skip("openvino is not installed")
    from framesift.engines.runtimes.openvino_runtime import OpenVinoRuntime, import_openvino

    ov = import_openvino()  # telemetry declined (a plain import starts its thread)

    x = ov.opset13.parameter([2, 3], ov.Type.f32, name="x")
    model = ov.Model([ov.opset13.relu(x)], [x], "tiny")
    rt = OpenVinoRuntime(model, device="cpu", threads=1)
    assert rt.run({"x": np.ones((2, 3), np.float32)})
    with pytest.raises(EngineError) as err:
        rt.run({"x": np.ones((4, 5), np.float32)})
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("openvino: model failed on CPU: ")
    assert "Exception from" not in msg and len(msg) > len("openvino: model failed on CPU: ") + 10
