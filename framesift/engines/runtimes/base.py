"""The Runtime interface: load a model artefact, run named tensors."""

from __future__ import annotations

import abc
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Precision = Literal["fp32", "fp16", "bf16", "int8"]  # int8: OpenVINO, opt-in only
Tensor = Any  # np.ndarray or torch.Tensor


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape (``None`` or a string for a dynamic axis) of one graph input/output."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


class Runtime(abc.ABC):
    """Runs one model graph on one device.

    ``run`` takes a mapping of input name → numpy array or torch tensor and returns a mapping of
    output name → array/tensor: numpy on the CPU path, torch tensors on the device where
    ``as_torch=True`` (so GPU results need not cross the bus).
    """

    name: str = "runtime"

    def __init__(self, *, device: str, precision: Precision) -> None:
        self.device = device
        self.precision: Precision = precision
        self._inputs: list[TensorSpec] = []  # filled by the subclass once the graph is loaded
        self._outputs: list[TensorSpec] = []

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        """The graph's inputs."""
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        """The graph's outputs."""
        return self._outputs

    @abc.abstractmethod
    def run(self, feeds: Mapping[str, Tensor], *, as_torch: bool = False) -> dict[str, Tensor]:
        """Run the graph once on ``feeds`` (all inputs, same batch size)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions / device memory."""

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision})"


def to_numpy(x: Tensor) -> np.ndarray:
    """A numpy view/copy of a numpy array or torch tensor (any device, any float type)."""
    if isinstance(x, np.ndarray):
        return x
    t = x.detach()
    if t.dtype.is_floating_point and t.dtype not in _numpy_floats():
        t = t.float()
    return np.asarray(t.cpu().numpy())


def host_outputs(
    specs: Sequence[TensorSpec], outs: Sequence[np.ndarray], as_torch: bool
) -> dict[str, Tensor]:
    """A host runtime's outputs by name: float16 widened to float32, as torch tensors (sharing the
    memory) with ``as_torch``, else the arrays."""
    result: dict[str, Tensor] = {}
    for spec, o in zip(specs, outs, strict=True):
        arr = o.astype(np.float32, copy=False) if o.dtype == np.float16 else o
        if as_torch:
            import torch

            result[spec.name] = torch.from_numpy(arr)
        else:
            result[spec.name] = arr
    return result


@functools.cache
def _numpy_floats() -> frozenset[Any]:
    """torch float types numpy can hold (looked up on first use: importing this module stays light)."""
    try:
        import torch
    except ModuleNotFoundError:  # pragma: no cover - torch is in the clip extra
        return frozenset()
    return frozenset({torch.float32, torch.float16, torch.float64})


def is_out_of_memory(exc: BaseException) -> bool:
    """``exc`` says a runtime ran out of (device or host) memory: worth a retry at a smaller batch."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "failed to allocate memory", "cudaerrormemoryallocation"))
