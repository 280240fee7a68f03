"""Runtimes that run model graphs, and which of them are available here.

Which runtime runs a model is decided by :func:`framesift.engines.plan.plan_engine` from these
probes; a new runtime is a name here, a probe in :func:`runtime_infos`, and rows in the models of
:data:`framesift.engines.plan.MODELS` that it runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata

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


#: ONNX Runtime wheels that install the same ``onnxruntime`` package (only one may be installed).
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


def installed_ort_distributions() -> list[str]:
    """The ONNX Runtime distributions installed here (by their metadata)."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def ort_clash(installed: list[str]) -> str | None:
    """Why the installed ONNX Runtime wheels break each other (None when they do not): they all
    write the same ``onnxruntime`` package, so whichever was installed last wins and the CUDA
    provider of ``onnxruntime-gpu`` may be gone."""
    if len(installed) < 2:
        return None
    keep = "onnxruntime-gpu" if "onnxruntime-gpu" in installed else installed[-1]
    drop = " ".join(n for n in installed if n != keep)
    return (
        f"{' and '.join(installed)} are both installed and overwrite each other; "
        f"pip uninstall -y {drop} {keep} && pip install {keep}"
    )


def nvidia_device_present() -> bool:
    """Whether an NVIDIA GPU may be visible: on Linux, its driver's device nodes (or WSL's GPU
    device); elsewhere assumed."""
    if not sys.platform.startswith("linux"):
        return True
    return any(
        os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/dxg")
    )


def _torch_info() -> tuple[bool, str, bool, str]:
    """(torch usable, version or why not, CUDA usable, why not). Without an NVIDIA device, an
    installed torch is not imported here (1-2 s): the plan may pick another runtime."""
    if "torch" not in sys.modules and not nvidia_device_present():
        if importlib.util.find_spec("torch") is None:
            why = "torch not installed (ModuleNotFoundError: No module named 'torch')"
            return False, why, False, why
        return True, metadata.version("torch"), False, "no NVIDIA GPU here (no /dev/nvidia*)"
    torch, tver = _version("torch")
    cuda_ok = bool(torch is not None and torch.cuda.is_available())  # type: ignore[attr-defined]
    return torch is not None, tver, cuda_ok, "no CUDA GPU visible to torch" if torch is not None else tver


@cache
def runtime_infos() -> tuple[RuntimeInfo, ...]:
    """Probe every runtime/device pair once per process (imports only; no model is built)."""
    infos: list[RuntimeInfo] = []
    torch_ok, tver, cuda_ok, no_cuda = _torch_info()
    infos.append(RuntimeInfo("torch", "cpu", torch_ok, tver))
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
            clash = ort_clash(installed_ort_distributions())
            infos.append(RuntimeInfo("onnxruntime", "cuda", False, f"{clash}; {why}" if clash else why))
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
