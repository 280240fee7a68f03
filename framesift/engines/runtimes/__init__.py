"""Runtimes that run model graphs, and which of them are available here.

Which runtime runs a model is decided by :func:`framesift.engines.plan.plan_engine` from these
probes; a new runtime is a name here, a probe in :func:`runtime_infos`, and rows in the models of
:data:`framesift.engines.plan.MODELS` that it runs.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from functools import cache

from framesift.engines.runtimes.base import Precision, Runtime, TensorSpec, to_numpy

__all__ = [
    "RUNTIME_NAMES",
    "Precision",
    "Runtime",
    "RuntimeInfo",
    "TensorSpec",
    "available_runtimes",
    "runtime_infos",
    "to_numpy",
]

log = logging.getLogger("framesift.engines")

RUNTIME_NAMES = ("torch", "onnxruntime", "tensorrt", "openvino")


@dataclass(frozen=True)
class RuntimeInfo:
    """One runtime on one device kind: available or not, with its version or the reason."""

    runtime: str
    device: str
    available: bool
    detail: str  # version when available, else why not

    @property
    def key(self) -> str:
        if self.device == "cpu" or self.runtime == "tensorrt":
            return self.runtime
        return f"{self.runtime}-{self.device}"


def _version(module: str) -> tuple[object | None, str]:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install raising anything
        return None, f"{module} not installed ({type(exc).__name__}: {exc})".splitlines()[0]
    return mod, str(getattr(mod, "__version__", "unknown"))


@cache
def runtime_infos() -> tuple[RuntimeInfo, ...]:
    """Probe every runtime/device pair once per process (imports only; no model is built)."""
    infos: list[RuntimeInfo] = []
    torch, tver = _version("torch")
    cuda_ok = bool(torch is not None and torch.cuda.is_available())  # type: ignore[attr-defined]
    no_cuda = "no CUDA GPU visible to torch" if torch is not None else tver
    infos.append(RuntimeInfo("torch", "cpu", torch is not None, tver))
    infos.append(RuntimeInfo("torch", "cuda", cuda_ok, tver if cuda_ok else no_cuda))
    ort, over = _version("onnxruntime")
    infos.append(RuntimeInfo("onnxruntime", "cpu", ort is not None, over))
    if ort is None:
        infos.append(RuntimeInfo("onnxruntime", "cuda", False, over))
    else:
        provs = ort.get_available_providers()  # type: ignore[attr-defined]
        gpu = [p for p in provs if p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")]
        if gpu and cuda_ok:
            infos.append(RuntimeInfo("onnxruntime", "cuda", True, f"{over} ({', '.join(gpu)})"))
        else:
            why = "no CUDA/TensorRT execution provider (pip install onnxruntime-gpu)" if not gpu else no_cuda
            infos.append(RuntimeInfo("onnxruntime", "cuda", False, why))
    trt, trver = _version("tensorrt")
    if trt is None:
        infos.append(RuntimeInfo("tensorrt", "cuda", False, trver))
    else:
        infos.append(RuntimeInfo("tensorrt", "cuda", cuda_ok, trver if cuda_ok else no_cuda))
    infos.append(_openvino_info())
    return tuple(infos)


def _openvino_info() -> RuntimeInfo:
    """OpenVINO on the CPU (its Intel GPU plugin is not planned: it cannot be tested here)."""
    try:
        from framesift.engines.runtimes.openvino_runtime import import_openvino

        ov = import_openvino()
    except Exception as exc:
        why = f"openvino not installed ({type(exc).__name__}: {exc})".splitlines()[0]
        return RuntimeInfo("openvino", "cpu", False, why + " (pip install openvino)")
    return RuntimeInfo("openvino", "cpu", True, str(ov.get_version()).split("-", 1)[0])


def available_runtimes() -> dict[str, str]:
    """``{name: version}`` for usable runtimes and ``{name: "unavailable: reason"}`` for the rest
    (names: torch, torch-cuda, onnxruntime, onnxruntime-cuda, tensorrt, openvino); for ``framesift doctor``."""
    return {i.key: i.detail if i.available else f"unavailable: {i.detail}" for i in runtime_infos()}
