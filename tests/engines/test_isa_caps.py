"""Instruction-set caps (ONEDNN_MAX_CPU_ISA & co.): the plan reads them before it picks bf16."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from framesift.engines import plan
from framesift.engines.isa import active_caps, bf16_cap, int8_kernels, isa_descriptor
from framesift.engines.plan import plan_engine
from framesift.engines.runtimes import RuntimeInfo
from framesift.errors import ConfigError

AVX2_CAPS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OV_CPU_MAX_ISA": "AVX2",
}


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """A CPU with native bf16 where torch and onnxruntime are available, with ``caps`` set."""

    def set_up(**caps: str) -> None:
        for var in AVX2_CAPS:
            monkeypatch.delenv(var, raising=False)
        for var, value in caps.items():
            monkeypatch.setenv(var, value)
        infos = (RuntimeInfo("torch", "cpu", True, "2"), RuntimeInfo("onnxruntime", "cpu", True, "1"))
        monkeypatch.setattr(plan, "runtime_infos", lambda: infos)
        monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: "AVX512-BF16")

    return set_up


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("ONEDNN_MAX_CPU_ISA", "AVX2", "ONEDNN_MAX_CPU_ISA=AVX2"),
        ("ONEDNN_MAX_CPU_ISA", "avx512_core", "ONEDNN_MAX_CPU_ISA=AVX512_CORE"),
        ("ATEN_CPU_CAPABILITY", "avx2", "ATEN_CPU_CAPABILITY=avx2"),
        ("MKL_ENABLE_INSTRUCTIONS", "AVX2", "MKL_ENABLE_INSTRUCTIONS=AVX2"),
        ("OV_CPU_MAX_ISA", "AVX2", "OV_CPU_MAX_ISA=AVX2"),
    ],
)
def test_a_cap_below_bf16_falls_back_to_fp32_with_the_reason(
    bf16_cpu: Callable[..., None], var: str, value: str, named: str
) -> None:
    bf16_cpu(**{var: value})
    for kind in ("clip", "yolo_world"):
        p = plan_engine(kind)
        assert (p.runtime, p.device, p.precision) == ("onnxruntime", "cpu", "fp32"), p
        assert f"no bf16: {named}" in p.reason
        p = plan_engine(kind, runtime="torch")
        assert p.precision == "fp32" and named in p.reason
        with pytest.raises(ConfigError, match=f"needs native bf16, but {named}") as exc:
            plan_engine(kind, runtime="torch", precision="bf16")
        assert "\n" not in str(exc.value) and "set precision: fp32" in str(exc.value)


def test_caps_at_or_above_bf16_keep_bf16(bf16_cpu: Callable[..., None]) -> None:
    for caps in ({}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, {"ONEDNN_MAX_CPU_ISA": "ALL"}):
        bf16_cpu(**caps)
        p = plan_engine("yolo_world")
        assert (p.runtime, p.precision) == ("torch", "bf16") and "no bf16" not in p.reason
    bf16_cpu(ATEN_CPU_CAPABILITY="avx512", MKL_ENABLE_INSTRUCTIONS="AVX512")
    assert plan_engine("clip").precision == "bf16"


def test_caps_without_native_bf16_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bf16_cap(None, AVX2_CAPS) is None
    assert bf16_cap("AMX", {"ONEDNN_MAX_CPU_ISA": "NOT_AN_ISA"}) is not None  # oneDNN refuses it too


def test_the_caps_are_part_of_the_isa_descriptor() -> None:
    plain, capped = isa_descriptor({}), isa_descriptor(AVX2_CAPS)
    assert plain != capped and "ONEDNN_MAX_CPU_ISA=AVX2" in capped
    assert active_caps({"ONEDNN_MAX_CPU_ISA": " avx2 ", "OTHER": "x"}) == {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_int8_kernels_follow_the_flags_and_the_oneDNN_cap() -> None:
    zen4 = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}
    assert int8_kernels({}, zen4) == "AVX512-VNNI"
    assert int8_kernels(AVX2_CAPS, zen4).startswith("AVX2 without VNNI (ONEDNN_MAX_CPU_ISA=AVX2)")
    assert int8_kernels({"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"}, zen4).startswith("AVX-VNNI")
    assert int8_kernels({}, {"avx2", "fma"}).startswith("AVX2 without VNNI:")
    assert int8_kernels({}, {"sse4_2"}).startswith("no AVX2")
