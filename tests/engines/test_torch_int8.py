"""INT8 on PyTorch's CPU: CLIP's Linear layers quantised dynamically (FBGEMM), gated, planned
where the CPU has no VNNI, and capped like the other CPU libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from framesift.engines import plan, quantize
from framesift.engines.isa import fbgemm_cap
from framesift.engines.plan import plan_engine
from framesift.engines.runtimes import RuntimeInfo
from framesift.errors import EngineError
from tests.engines.clip_helpers import TINY, cosine_rows, tiny_model

torch = pytest.importorskip("torch")

AVX2_CAPS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


@pytest.fixture(scope="module")
def model() -> object:
    return tiny_model(seed=3)


def _clip(model: object, precision: str, **kw: object):  # type: ignore[no-untyped-def]
    from framesift.engines.models.clip import ClipEmbedder

    return ClipEmbedder(TINY, torch_model=model, runtime="torch", device="cpu", precision=precision, **kw)


def test_linear_attention_equals_multihead_attention(model: object) -> None:
    import copy

    from framesift.engines.runtimes.torch_int8 import linear_attention

    ref = copy.deepcopy(model)
    alt = linear_attention(copy.deepcopy(model))
    mhas = [m for m in alt.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    assert not mhas and any(type(m).__name__ == "LinearAttention" for m in alt.modules())
    image = torch.rand(3, 3, 64, 64)
    text = torch.randint(0, 1000, (2, ref.context_length))  # the text tower's causal mask too
    with torch.inference_mode():
        torch.testing.assert_close(alt.encode_image(image), ref.encode_image(image), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alt.encode_text(text), ref.encode_text(text), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
def test_linear_attention_takes_every_call_multihead_attention_takes(batch_first: bool) -> None:
    """Cross-attention, bool and float masks, per-head masks, key padding: the same outputs."""
    from framesift.engines.runtimes.torch_int8 import linear_attention

    torch.manual_seed(1)
    holder = torch.nn.Module()
    holder.mha = torch.nn.MultiheadAttention(32, 4, batch_first=batch_first).eval()
    ref = holder.mha
    alt = linear_attention(holder).mha
    assert type(alt).__name__ == "LinearAttention"

    def seq(b: int, n: int) -> torch.Tensor:
        return torch.randn(b, n, 32) if batch_first else torch.randn(n, b, 32)

    x, ctx = seq(2, 5), seq(2, 7)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    calls = [
        dict(query=x, key=x, value=x),
        dict(query=x, key=x, value=x, attn_mask=causal),
        dict(query=x, key=x, value=x, attn_mask=causal.float().masked_fill(causal, float("-inf"))),
        dict(query=x, key=x, value=x, attn_mask=torch.randn(2 * 4, 5, 5)),
        dict(query=x, key=ctx, value=ctx),
        dict(query=x, key=ctx, value=ctx, key_padding_mask=pad),
    ]
    with torch.inference_mode():
        for kw in calls:
            want = ref(**kw, need_weights=False)[0]
            torch.testing.assert_close(alt(**kw, need_weights=False)[0], want, atol=1e-5, rtol=1e-5)
    separate = torch.nn.Module()
    separate.mha = torch.nn.MultiheadAttention(32, 4, kdim=16, vdim=16)  # separate weights: left as is
    assert isinstance(linear_attention(separate).mha, torch.nn.MultiheadAttention)


def test_clip_int8_on_torch_passes_its_gate(model: object, frames_by_size: dict) -> None:
    fp32, int8 = _clip(model, "fp32"), _clip(model, "int8")
    assert int8.plan.precision == "int8" and "generated" in str(int8.calibration)
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    quantized = [m for m in int8._run_net.visual.modules() if isinstance(m, dynamic)]
    assert len(quantized) >= 4 * 2  # qkv, out, fc, proj in each of the 2 blocks
    images = [f for fs in frames_by_size.values() for f in fs[:2]]
    assert cosine_rows(int8.embed_images(images), fp32.embed_images(images)).min() >= 0.98
    # the text tower stays fp32
    np.testing.assert_allclose(int8.embed_texts(["a cat"]), fp32.embed_texts(["a cat"]), atol=1e-5)
    for e in (fp32, int8):
        e.close()


def test_a_failed_gate_refuses_the_torch_engine_in_one_line(
    model: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quantize, "CLIP_MIN_COSINE", 1.01)  # no engine can pass: the refusal path
    with pytest.raises(EngineError) as exc:
        _clip(model, "int8")
    msg = str(exc.value)
    assert "\n" not in msg and "INT8 engine refused: image embedding cosine min" in msg
    assert "use precision: fp32" in msg and exc.value.engine == "torch"


def _cpu(monkeypatch: pytest.MonkeyPatch, kernels: str, **caps: str) -> None:
    for var in (*AVX2_CAPS, "FBGEMM_ENABLE_INSTRUCTIONS", "OV_CPU_MAX_ISA"):
        monkeypatch.delenv(var, raising=False)
    for var, value in caps.items():
        monkeypatch.setenv(var, value)
    infos = tuple(RuntimeInfo(r, "cpu", True, "1") for r in ("torch", "onnxruntime", "openvino"))
    monkeypatch.setattr(plan, "runtime_infos", lambda: infos)
    monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: None)
    monkeypatch.setattr(plan, "int8_kernels", lambda: kernels)


def test_int8_runs_on_torch_without_vnni_and_on_openvino_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, "AVX2 without VNNI (ONEDNN_MAX_CPU_ISA=AVX2): ...", **AVX2_CAPS)
    p = plan_engine("clip", precision="int8")
    assert (p.runtime, p.precision) == ("torch", "int8") and "FBGEMM AVX2" in p.reason
    assert plan_engine("clip", runtime="openvino", precision="int8").runtime == "openvino"
    assert plan_engine("clip").precision == "fp32"  # auto never picks INT8 for CLIP
    _cpu(monkeypatch, "AVX512-VNNI")
    assert plan_engine("clip", precision="int8").runtime == "openvino"
    assert plan_engine("clip", runtime="torch", precision="int8").runtime == "torch"


def test_fbgemm_follows_the_other_caps() -> None:
    assert fbgemm_cap({}) is None
    assert fbgemm_cap(AVX2_CAPS) == "AVX2"
    assert fbgemm_cap({"ATEN_CPU_CAPABILITY": "avx2"}) == "AVX2"
    assert fbgemm_cap({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}) is None
    assert fbgemm_cap({**AVX2_CAPS, "FBGEMM_ENABLE_INSTRUCTIONS": "avx512"}) == "AVX512"  # the user's wins


def test_int8_under_the_avx2_caps_runs_and_caps_fbgemm(tmp_path: Path) -> None:
    """In a fresh process (FBGEMM reads its variable once): the caps reach FBGEMM, the plan picks
    torch for INT8, and the engine runs."""
    code = (
        "import os, torch\n"
        "from tests.engines.clip_helpers import TINY, tiny_model\n"
        "from framesift.engines.models.clip import ClipEmbedder\n"
        "from framesift.samples import render_frame\n"
        "e = ClipEmbedder(TINY, torch_model=tiny_model(seed=3), device='cpu', precision='int8')\n"
        "v = e.embed_images([render_frame(i, i, i, 96, 64) for i in range(3)])\n"
        "print(e.plan.runtime, os.environ['FBGEMM_ENABLE_INSTRUCTIONS'], v.shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FBGEMM_ENABLE_INSTRUCTIONS"}
    env.update(AVX2_CAPS, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[:2] == ["torch", "AVX2"], proc.stdout
