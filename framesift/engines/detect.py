"""Detector / Segmenter capabilities, and the glue to the shared engine cache and ONNX runtime.

Exports are cached with :class:`framesift.engines.cache.EngineCache` (key: weights hash, export
options, torch version, shape profile) and run with
:class:`framesift.engines.runtimes.ort_runtime.OrtRuntime`; :class:`OnnxSession` only adapts its
``dict`` outputs to an ordered list and resolves ``device="auto"``.
"""

from __future__ import annotations

import abc
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.base import ImageLike
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


class Detector(abc.ABC):
    """Finds objects named by text prompts. ``detect`` returns one ``sv.Detections`` per image with
    ``data["class_name"]`` holding the prompt of each box."""

    name: str = "detector"

    @abc.abstractmethod
    def detect(self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None) -> list[Any]:
        """Detect in a batch; ``prompts`` None keeps the current prompt set."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions."""


class Segmenter(abc.ABC):
    """Turns boxes on one image into masks at the image's resolution."""

    name: str = "segmenter"

    @abc.abstractmethod
    def segment(self, image: ImageLike, boxes: np.ndarray) -> np.ndarray:
        """``boxes`` (N, 4) xyxy in image pixels → (N, H, W) bool masks."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions."""


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
