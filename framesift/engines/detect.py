"""Glue from the detection models to the shared engine cache and ONNX runtime (``Detector`` and
``Segmenter`` are declared in :mod:`framesift.engines.base`).

Exports are cached with :class:`framesift.engines.cache.EngineCache` (key: weights hash, export
options, torch version, shape profile) and run with
:class:`framesift.engines.runtimes.ort_runtime.OrtRuntime`; :class:`OnnxSession` only adapts its
``dict`` outputs to an ordered list and resolves ``device="auto"``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.base import Detector, Segmenter
from framesift.engines.cache import EngineCache, EngineKey
from framesift.errors import EngineError

__all__ = [
    "Detector",
    "EngineCache",
    "EngineKey",
    "OnnxSession",
    "Segmenter",
    "export_key",
    "hash_state_dict",
]

log = logging.getLogger("framesift.engines")


def hash_state_dict(state: Mapping[str, Any]) -> str:
    """A stable hash of a torch ``state_dict`` (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def export_key(model: str, weights: str, shape_profile: Mapping[str, Any], **export: Any) -> EngineKey:
    """The shared engine-cache key of an ONNX export (device independent: ONNX is portable)."""
    import torch

    return EngineKey(
        model=model,
        weights_hash=weights,
        runtime="onnx-export",
        runtime_version=f"torch-{torch.__version__}",
        device="any",
        precision="fp32",
        shape_profile=dict(shape_profile),
        export=export,
    )


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` where onnxruntime has a CUDA/TensorRT provider, else ``cpu``."""
    if device != "auto":
        return device
    import onnxruntime as ort

    gpu = {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers())
    return "cuda" if gpu else "cpu"


class OnnxSession:
    """The shared ONNX Runtime runtime (``OrtRuntime``) with outputs as an ordered list."""

    def __init__(self, path: str | Path, *, device: str = "auto", threads: int | None = None) -> None:
        from framesift.engines.runtimes.ort_runtime import OrtRuntime

        self.path = Path(path)
        self.device = resolve_device(device)
        self.runtime = OrtRuntime(self.path, device=self.device, threads=threads)
        self.providers = self.runtime.providers
        self.input_names = [t.name for t in self.runtime.inputs]
        self.output_names = [t.name for t in self.runtime.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            out = self.runtime.run(feeds)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"ONNX model {self.path.name} failed: {exc}", engine=self.path.name) from exc
        return [np.asarray(out[n]) for n in self.output_names]
