"""The engine plan: every ``auto`` rule, on machines simulated by their runtime probes, and every
refused combination as one ConfigError line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from framesift.engines import plan
from framesift.engines.plan import MODELS, Artefact, plan_engine
from framesift.engines.runtimes import RuntimeInfo
from framesift.errors import ConfigError

ALL = ("torch-cpu", "torch-cuda", "onnxruntime-cpu", "onnxruntime-cuda", "tensorrt-cuda", "openvino-cpu")


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``machine("torch-cpu", ..., bf16="AMX", int8="AVX512-VNNI")``: only those runtimes available,
    that CPU."""

    def set_up(*available: str, bf16: str | None = None, int8: str = "AVX2 without VNNI") -> None:
        infos = []
        for key in ALL:
            runtime, device = key.rsplit("-", 1)
            ok = key in available
            infos.append(RuntimeInfo(runtime, device, ok, "1.0" if ok else f"{key} missing here"))
        monkeypatch.setattr(plan, "runtime_infos", lambda: tuple(infos))
        monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: bf16)
        monkeypatch.setattr(plan, "int8_kernels", lambda: int8)
        monkeypatch.setattr(plan, "nncf_installed", lambda: True)

    return set_up


CPU_ONLY = ("torch-cpu", "onnxruntime-cpu")
GPU = ALL


def _plan(kind: str, **kw: object) -> tuple[str, str, str]:
    p = plan_engine(kind, **kw)  # type: ignore[arg-type]
    return p.runtime, p.device, p.precision


def _refused(kind: str, match: str, **kw: object) -> str:
    with pytest.raises(ConfigError, match=match) as exc:
        plan_engine(kind, **kw)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(MODELS[kind].label + ": "), msg
    assert exc.value.exit_code == 2
    return msg


# --------------------------------------------------------------------------- auto rules


def test_auto_fp16_on_cuda(machine: Callable[..., None]) -> None:
    machine(*GPU)
    assert _plan("clip") == ("tensorrt", "cuda", "fp16")
    assert _plan("yolo_world") == ("torch", "cuda", "fp16")
    assert "fp16 on CUDA" in plan_engine("clip").reason
    machine("torch-cpu", "torch-cuda", "onnxruntime-cpu", "onnxruntime-cuda")
    assert _plan("clip") == ("onnxruntime", "cuda", "fp16")
    assert _plan("clip", runtime="torch") == ("torch", "cuda", "fp16")
    # a pair that has no fp16 path keeps its own default
    assert _plan("yolo_world", runtime="onnxruntime") == ("onnxruntime", "cuda", "fp32")
    assert _plan("sam") == ("onnxruntime", "cuda", "fp32")
    # an explicit index is kept
    assert _plan("clip", device="cuda:1") == ("onnxruntime", "cuda:1", "fp16")


def test_auto_bf16_on_native_bf16_cpus_when_torch_runs_the_model(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY, bf16="AMX")
    for kind in ("clip", "yolo_world"):
        p = plan_engine(kind)
        assert (p.runtime, p.device, p.precision) == ("torch", "cpu", "bf16")
        assert "native bf16 (AMX)" in p.reason and "precision: fp32" in p.reason
        assert _plan(kind, runtime="torch") == ("torch", "cpu", "bf16")
        assert _plan(kind, precision="fp32") == ("onnxruntime", "cpu", "fp32")
    assert _plan("clip", runtime="onnxruntime") == ("onnxruntime", "cpu", "fp32")
    # an ONNX file cannot run on torch: fp32 on onnxruntime
    assert _plan("clip", artefact="/models/clip/image.onnx") == ("onnxruntime", "cpu", "fp32")
    # models that do not opt in keep fp32 (the text tower: embeddings equal open_clip's)
    assert _plan("clip_text") == ("torch", "cpu", "fp32")
    assert _plan("sam") == ("onnxruntime", "cpu", "fp32")


def test_auto_fp32_on_onnxruntime_without_gpu_or_bf16(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY)
    for kind in ("clip", "yolo_world", "sam"):
        p = plan_engine(kind)
        assert (p.runtime, p.device, p.precision) == ("onnxruntime", "cpu", "fp32")
        assert p.reason.startswith("fastest available (") and "unavailable" in p.reason
    assert _plan("clip", runtime="torch") == ("torch", "cpu", "fp32")
    # CLIP's text tower runs on torch (no export for a tower that runs once per prompt set)
    assert _plan("clip_text") == ("torch", "cpu", "fp32")
    # nothing but torch installed: torch
    machine("torch-cpu")
    assert _plan("clip") == ("torch", "cpu", "fp32")
    assert _plan("yolo_world") == ("torch", "cpu", "fp32")


def test_explicit_bf16_goes_to_torch_under_auto(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY)
    p = plan_engine("clip", precision="bf16")
    assert (p.runtime, p.precision) == ("torch", "bf16") and "bf16 runs on torch" in p.reason
    assert _plan("yolo_world", precision="bf16") == ("torch", "cpu", "bf16")


def test_artefacts_fix_the_runtime(machine: Callable[..., None]) -> None:
    machine(*GPU)
    assert _plan("clip", artefact="m/image.onnx")[0] == "tensorrt"
    assert _plan("yolo_world", artefact="m.onnx") == ("onnxruntime", "cuda", "fp32")
    assert _plan("yolo_world", artefact="m.pt2")[0] == "torch"
    assert Artefact.of("weights.pt") is None  # weights are exported for whatever the plan picks
    # a .pt2 program also fixes precision and device
    program = Artefact("m.pt2", "pt2", precision="bf16", device="cpu")
    p = plan_engine("yolo_world", artefact=program)
    assert (p.runtime, p.device, p.precision) == ("torch", "cpu", "bf16") and "m.pt2" in p.reason
    assert _plan("yolo_world", artefact=program, precision="bf16", device="cpu") == ("torch", "cpu", "bf16")


def test_reason_names_what_was_skipped(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY)
    p = plan_engine("clip", precision="fp32")
    assert p.reason == "fastest available (tensorrt, onnxruntime-cuda, torch-cuda unavailable)"
    assert p.skipped == ("tensorrt", "onnxruntime-cuda", "torch-cuda")
    assert plan_engine("clip", runtime="onnxruntime", device="cpu", precision="fp32").reason == "requested"
    assert p.summary().startswith("onnxruntime-cpu fp32 (fastest available")
    assert p.describe().startswith("onnxruntime on cpu, fp32 (")


def test_every_model_plans_and_doctor_sees_the_same(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY)
    plans = plan.plan_all()
    assert set(plans) == set(MODELS)
    for kind, p in plans.items():
        assert not isinstance(p, Exception) and p == plan_engine(kind)
    machine()  # nothing installed: the plan says why, it does not raise
    assert all(isinstance(p, ConfigError) for p in plan.plan_all().values())


# --------------------------------------------------------------------------- refusals


def test_unknown_names_are_refused(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY)
    _refused(
        "yolo_world",
        r"unknown runtime 'tensorflow' \(choose one of: auto, onnxruntime, openvino, torch\)",
        runtime="tensorflow",
    )
    _refused("sam", "unknown runtime 'torch'", runtime="torch")
    _refused("clip", r"unknown device 'tpu' \(choose auto, cpu, cuda or cuda:N\)", device="tpu")
    _refused("clip", "unknown precision 'int4'", precision="int4")
    with pytest.raises(ValueError, match="unknown model kind"):
        plan_engine("resnet")


def test_unavailable_runtime_or_device_names_what_is(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY)
    msg = _refused("clip", "not available here", runtime="tensorrt", precision="fp32")
    assert "tensorrt: tensorrt-cuda missing here" in msg and msg.endswith("available: torch, onnxruntime")
    _refused("yolo_world", "torch-cuda missing here", runtime="torch", device="cuda")
    _refused("clip", "not available here", device="cuda")
    _refused(
        "clip",
        "runtime tensorrt does not run on device cpu: set device: cuda",
        runtime="tensorrt",
        device="cpu",
    )


@pytest.mark.parametrize(
    ("kind", "kw", "match"),
    [
        (
            "clip",
            {"runtime": "onnxruntime", "device": "cpu", "precision": "fp16"},
            "fp16 with onnxruntime needs a CUDA device: set precision: fp32",
        ),
        (
            "clip",
            {"runtime": "onnxruntime", "device": "cpu", "precision": "bf16"},
            "bf16 is not supported by onnxruntime: set precision: fp32 \\(or auto\\), or runtime: torch",
        ),
        (
            "clip",
            {"runtime": "torch", "device": "cpu", "precision": "fp16"},
            "fp16 with torch needs a CUDA device: set precision: bf16 or fp32",
        ),
        (
            "clip",
            {"device": "cpu", "precision": "fp16"},
            "fp16 with onnxruntime or openvino or torch needs a CUDA device",
        ),
        (
            "clip",
            {"runtime": "onnxruntime", "precision": "fp16"},
            "fp16 needs onnxruntime-cuda, which is not available here",
        ),
        (
            "yolo_world",
            {"runtime": "onnxruntime", "precision": "bf16"},
            "bf16 is not supported by onnxruntime: set precision: fp32",
        ),
        (
            "yolo_world",
            {"runtime": "onnxruntime", "precision": "fp16"},
            "fp16 is not supported by onnxruntime: set precision: fp32 \\(or auto\\), or runtime: torch",
        ),
        (
            "yolo_world",
            {"runtime": "torch", "device": "cpu", "precision": "fp16"},
            "set precision: bf16 or fp32",
        ),
        (
            "sam",
            {"precision": "bf16"},
            "bf16 is not supported by onnxruntime or openvino: set precision: fp32",
        ),
    ],
)
def test_impossible_precisions_are_refused(
    machine: Callable[..., None], kind: str, kw: dict[str, str], match: str
) -> None:
    machine(*CPU_ONLY)
    _refused(kind, match, **kw)


def test_artefact_contradictions_are_refused(machine: Callable[..., None]) -> None:
    machine(*CPU_ONLY)
    _refused(
        "clip",
        "runtime torch cannot run the ONNX file image.onnx: it runs on runtime onnxruntime or tensorrt",
        runtime="torch",
        artefact="/m/image.onnx",
    )
    _refused(
        "yolo_world",
        "set runtime: onnxruntime \\(or auto\\), or pass the .pt checkpoint",
        runtime="torch",
        artefact="m.onnx",
    )
    _refused("yolo_world", "runs on runtime torch, not onnxruntime", runtime="onnxruntime", artefact="m.pt2")
    program = Artefact("m.pt2", "pt2", precision="bf16", device="cpu")
    _refused(
        "yolo_world",
        "m.pt2 was exported in bf16, not fp32: set precision: bf16",
        artefact=program,
        precision="fp32",
    )
    _refused(
        "yolo_world", "m.pt2 was exported for cpu, not cuda: set device: cpu", artefact=program, device="cuda"
    )
    _refused("sam", "a torch.export \\(.pt2\\) file \\(m.pt2\\) cannot run this model", artefact="m.pt2")


def test_openvino_comes_after_onnxruntime_and_before_torch_in_fp32(machine: Callable[..., None]) -> None:
    # measured on an AVX2 CPU (bench/RESULTS.md): OpenVINO fp32 no faster than ONNX Runtime, faster
    # than PyTorch fp32
    machine(*CPU_ONLY, "openvino-cpu")
    for kind in ("clip", "yolo_world", "sam"):
        assert _plan(kind) == ("onnxruntime", "cpu", "fp32")
    assert _plan("clip_text") == ("torch", "cpu", "fp32")
    assert _plan("yolo_world", runtime="openvino") == ("openvino", "cpu", "fp32")
    machine("torch-cpu", "openvino-cpu")
    p = plan_engine("clip")
    assert (p.runtime, p.precision) == ("openvino", "fp32") and "onnxruntime unavailable" in p.reason
    # an ONNX file runs on OpenVINO too; native bf16 keeps torch first
    assert _plan("clip", artefact="/m/image.onnx") == ("openvino", "cpu", "fp32")
    machine(*CPU_ONLY, "openvino-cpu", bf16="AMX")
    assert _plan("clip") == ("torch", "cpu", "bf16")
    assert _plan("clip", precision="fp32") == ("onnxruntime", "cpu", "fp32")


def test_int8_is_opt_in_on_openvino_or_for_clip_on_torch(machine: Callable[..., None]) -> None:
    """INT8 runs on OpenVINO (NNCF); CLIP's also on torch (dynamic, FBGEMM), first where the CPU's
    INT8 kernels lack VNNI."""
    for int8, clip_on in (("AVX512-VNNI", "openvino"), ("AVX2 without VNNI", "torch")):
        machine(*CPU_ONLY, "openvino-cpu", bf16="AMX", int8=int8)
        _refused("sam", "precision int8 is not supported by onnxruntime or openvino", precision="int8")
        _refused("clip_text", "precision int8 is not supported", precision="int8")  # the text tower: fp32
        for kind in ("clip", "yolo_world"):
            assert plan_engine(kind).precision != "int8"
            assert plan_engine(kind, device="cpu").precision != "int8"
            p = plan_engine(kind, precision="int8")
            want = clip_on if kind == "clip" else "openvino"
            assert (p.runtime, p.precision) == (want, "int8") and "int8 kernels: " in p.reason
        _refused(
            "clip", "precision int8 is not supported by onnxruntime", runtime="onnxruntime", precision="int8"
        )
    machine(*CPU_ONLY)
    _refused("yolo_world", "precision int8 needs openvino, which is not available here", precision="int8")
    assert _plan("clip", precision="int8") == ("torch", "cpu", "int8")


def test_transnet_bf16_runs_on_openvino(machine: Callable[..., None]) -> None:
    """On native-bf16 CPUs OpenVINO runs TransNetV2 in bf16 (its 3D form, measured 2.6x torch bf16
    with AMX, 1.4x with AVX512-BF16); without OpenVINO, torch does."""
    machine(*CPU_ONLY, "openvino-cpu", bf16="AMX")
    p = plan_engine("transnet")
    assert (p.runtime, p.device, p.precision) == ("openvino", "cpu", "bf16")
    assert "native bf16 (AMX): openvino runs bf16" in p.reason
    assert _plan("transnet", precision="bf16") == ("openvino", "cpu", "bf16")
    assert _plan("transnet", precision="fp32") == ("onnxruntime", "cpu", "fp32")
    assert _plan("transnet", runtime="torch") == ("torch", "cpu", "bf16")
    assert _plan("clip") == ("torch", "cpu", "bf16")  # other models keep torch
    machine(*CPU_ONLY, "openvino-cpu", bf16="AVX512-BF16")
    assert _plan("transnet") == ("openvino", "cpu", "bf16")
    assert _plan("transnet", precision="bf16") == ("openvino", "cpu", "bf16")
    assert _plan("transnet", runtime="torch") == ("torch", "cpu", "bf16")
    machine(*CPU_ONLY, bf16="AMX")
    assert _plan("transnet") == ("torch", "cpu", "bf16")


def test_transnet_shipped_weights_run_int8_with_vnni_and_no_amx(machine: Callable[..., None]) -> None:
    """Without AMX but with VNNI, auto runs TransNetV2's shipped weights in INT8 on OpenVINO (their
    INT8 quality is measured; on AVX512-BF16 it is 1.8x OpenVINO bf16); not other weights, an
    explicit runtime or precision, plain AVX2 (the gate refuses it there), with AMX (bf16 is as
    fast), where OpenVINO is missing, or on CUDA."""
    machine(*CPU_ONLY, "openvino-cpu", int8="AVX512-VNNI")
    p = plan_engine("transnet")
    assert (p.runtime, p.device, p.precision) == ("openvino", "cpu", "int8")
    assert "INT8 kernels with AVX512-VNNI" in p.reason and "precision: fp32" in p.reason
    assert _plan("transnet", shipped_weights=False) == ("onnxruntime", "cpu", "fp32")
    assert _plan("transnet", precision="fp32") == ("onnxruntime", "cpu", "fp32")
    assert _plan("transnet", runtime="onnxruntime") == ("onnxruntime", "cpu", "fp32")
    assert _plan("transnet", runtime="openvino") == ("openvino", "cpu", "fp32")
    assert _plan("yolo_world") == ("onnxruntime", "cpu", "fp32")  # auto never picks INT8 for others
    assert _plan("clip") == ("onnxruntime", "cpu", "fp32")
    machine(*CPU_ONLY, "openvino-cpu", int8="AVX-VNNI")
    assert _plan("transnet") == ("openvino", "cpu", "int8")
    machine(*CPU_ONLY, "openvino-cpu")  # AVX2 without VNNI
    assert _plan("transnet") == ("onnxruntime", "cpu", "fp32")
    machine(*CPU_ONLY, "openvino-cpu", bf16="AVX512-BF16", int8="AVX512-VNNI")
    p = plan_engine("transnet")
    assert (p.runtime, p.precision) == (
        "openvino",
        "int8",
    ) and "no AMX, INT8 kernels with AVX512-VNNI" in p.reason
    assert _plan("transnet", shipped_weights=False) == ("openvino", "cpu", "bf16")
    assert _plan("transnet", precision="bf16") == ("openvino", "cpu", "bf16")
    machine(*CPU_ONLY, "openvino-cpu", bf16="AMX", int8="AVX512-VNNI")
    assert _plan("transnet") == ("openvino", "cpu", "bf16")
    machine(*CPU_ONLY, int8="AVX512-VNNI")
    assert _plan("transnet") == ("onnxruntime", "cpu", "fp32")
    machine(*GPU, int8="AVX512-VNNI")
    assert _plan("transnet") == ("torch", "cuda", "fp16")


def test_transnet_auto_keeps_fp32_without_nncf(
    machine: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenVINO alone (no NNCF to build the INT8 engine): auto does not pick INT8."""
    machine(*CPU_ONLY, "openvino-cpu", int8="AVX512-VNNI")
    monkeypatch.setattr(plan, "nncf_installed", lambda: False)
    assert _plan("transnet") == ("onnxruntime", "cpu", "fp32")
