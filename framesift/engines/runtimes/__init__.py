"""Runtimes that run model graphs, what is available here, and how ``auto`` chooses.

``auto`` order (fastest first): tensorrt > onnxruntime-cuda > torch-cuda > onnxruntime-cpu > torch-cpu.
On CPU, onnxruntime beat eager PyTorch on CLIP ViT-B-32 (measured by ``bench/clip_throughput.py``;
see docs/engines.md), hence its place ahead of torch-cpu.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from functools import cache

from framesift.engines.runtimes.base import Precision, Runtime, TensorSpec, to_numpy
from framesift.errors import EngineError

__all__ = [
    "AUTO_ORDER",
    "RUNTIME_NAMES",
    "Precision",
    "Runtime",
    "RuntimeInfo",
    "Selection",
    "TensorSpec",
    "available_runtimes",
    "runtime_infos",
    "select_runtime",
    "to_numpy",
]

log = logging.getLogger("framesift.engines")

RUNTIME_NAMES = ("torch", "onnxruntime", "tensorrt")
# (runtime, device) from fastest to slowest.
AUTO_ORDER: tuple[tuple[str, str], ...] = (
    ("tensorrt", "cuda"),
    ("onnxruntime", "cuda"),
    ("torch", "cuda"),
    ("onnxruntime", "cpu"),
    ("torch", "cpu"),
)


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
    no_cuda = "no CUDA device visible to torch" if torch is not None else tver
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
    return tuple(infos)


def available_runtimes() -> dict[str, str]:
    """``{name: version}`` for usable runtimes and ``{name: "unavailable: reason"}`` for the rest
    (names: torch, torch-cuda, onnxruntime, onnxruntime-cuda, tensorrt); for ``framesift doctor``."""
    return {i.key: i.detail if i.available else f"unavailable: {i.detail}" for i in runtime_infos()}


@dataclass(frozen=True)
class Selection:
    runtime: str
    device: str
    reason: str


def _available_list() -> str:
    ok = [i.key for i in runtime_infos() if i.available]
    return ", ".join(ok) or "none"


def select_runtime(runtime: str = "auto", device: str = "auto") -> Selection:
    """Resolve ``runtime`` (auto|torch|onnxruntime|tensorrt) and ``device`` (auto|cpu|cuda[:N]).

    Raises EngineError naming what is available when an explicit request cannot be met.
    """
    if runtime not in ("auto", *RUNTIME_NAMES):
        raise EngineError(
            f"unknown runtime {runtime!r} (choose auto, {', '.join(RUNTIME_NAMES)}; "
            f"available here: {_available_list()})",
            engine=runtime,
        )
    kind = "auto" if device == "auto" else device.split(":", 1)[0]
    if kind not in ("auto", "cpu", "cuda"):
        raise EngineError(f"unknown device {device!r} (choose auto, cpu, cuda or cuda:N)", engine=runtime)
    infos = {(i.runtime, i.device): i for i in runtime_infos()}
    candidates = [(r, d) for (r, d) in AUTO_ORDER if (runtime in ("auto", r)) and (kind in ("auto", d))]
    for r, d in candidates:
        info = infos[(r, d)]
        if info.available:
            dev = device if kind != "auto" else d
            skipped = [infos[c].key for c in candidates[: candidates.index((r, d))]]
            why = "fastest available" + (f" ({', '.join(skipped)} unavailable)" if skipped else "")
            if runtime != "auto":
                why = "requested"
            return Selection(r, dev, why)
    reasons = "; ".join(f"{infos[c].key}: {infos[c].detail}" for c in candidates)
    raise EngineError(
        f"runtime {runtime!r} on device {device!r} is not available here ({reasons}); "
        f"available: {_available_list()}",
        engine=runtime,
    )
