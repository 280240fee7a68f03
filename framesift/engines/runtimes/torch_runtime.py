"""PyTorch runtime: eager (optionally ``torch.compile``d) module on CPU or CUDA, with CUDA graphs for
fixed batch shapes."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from framesift.engines.runtimes.base import Precision, Runtime, Tensor, TensorSpec, to_numpy
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines.torch")

MAX_GRAPHS = 16  # CUDA graphs kept (one per batch bucket), least recently used evicted


def batch_bucket(n: int) -> int:
    """The batch size a batch of ``n`` runs at when shapes are bucketed: the next power of two.

    CUDA graphs are captured, and ``torch.compile(dynamic=False)`` compiles, once per input shape;
    the batcher hands out every size from 1 to ``max_batch``, so without buckets each new size
    recaptures or recompiles (seconds each). Powers of two bound that to log2(max_batch) + 1 shapes
    (13 for 4096) at most twice the work on a padded batch.
    """
    if n < 1:
        return 1
    return 1 << (n - 1).bit_length()


def torch_dtype(precision: Precision) -> Any:
    import torch

    # int8: a dynamically quantised module (runtimes/torch_int8.py) takes and returns fp32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}[
        precision
    ]


class TorchRuntime(Runtime):
    """Runs a ``torch.nn.Module`` (or a loaded ``torch.export`` program) whose ``forward`` takes the
    inputs positionally in ``inputs`` order and returns a tensor or a tuple of tensors in ``outputs``
    order."""

    name = "torch"

    def __init__(
        self,
        module: Any,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        *,
        device: str = "cpu",
        precision: Precision = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        cuda_graphs: bool = False,
        threads: int | None = None,
        bucket_batches: bool | None = None,
    ) -> None:
        import torch

        super().__init__(device=device, precision=precision)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(
                "torch runtime: CUDA requested but torch.cuda.is_available() is False", engine=self.name
            )
        if precision == "fp16" and not device.startswith("cuda"):
            log.warning("torch runtime: fp16 on CPU is slow and partly unsupported; consider bf16 or fp32")
        if threads:
            torch.set_num_threads(threads)
        self._dtype = torch_dtype(precision)
        self._channels_last = channels_last
        with contextlib.suppress(NotImplementedError):  # a torch.export program is already inference-only
            module = module.eval()
        module = module.to(device=device, dtype=self._dtype)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self._module = module
        if compile:
            _allow_recompiles(MAX_GRAPHS)
        self._fn = torch.compile(module, dynamic=False) if compile else module
        self._use_graphs = cuda_graphs and device.startswith("cuda")
        self._bucket = (self._use_graphs or compile) if bucket_batches is None else bucket_batches
        self._graphs: OrderedDict[tuple[Any, ...], tuple[Any, list[Any], list[Any]]] = OrderedDict()
        self._inputs = list(inputs)
        self._outputs = list(outputs)

    @property
    def module(self) -> Any:
        return self._module

    def _prepare(self, x: Tensor) -> Any:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        t = t.to(self.device, non_blocking=True)
        if t.dtype.is_floating_point:
            t = t.to(self._dtype)
            if self._channels_last and t.ndim == 4:
                t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _call(self, args: list[Any]) -> list[Any]:
        out = self._fn(*args)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def _run_graph(self, args: list[Any]) -> list[Any]:
        import torch

        key = tuple((tuple(a.shape), a.dtype) for a in args)
        entry = self._graphs.get(key)
        if entry is None:
            static_in = [a.clone() for a in args]
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside the graph (allocator, cuDNN autotune)
                    self._call(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._call(static_in)
            entry = (graph, static_in, static_out)
            self._graphs[key] = entry
            if len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        graph, static_in, static_out = entry
        for dst, src in zip(static_in, args, strict=True):
            dst.copy_(src)
        graph.replay()
        return [o.clone() for o in static_out]

    def run(self, feeds: Mapping[str, Tensor], *, as_torch: bool = False) -> dict[str, Tensor]:
        import torch

        missing = [s.name for s in self._inputs if s.name not in feeds]
        if missing:
            raise EngineError(f"torch runtime: missing inputs {missing}", engine=self.name)
        args = [self._prepare(feeds[s.name]) for s in self._inputs]
        batched = [_is_batch_axis(s) for s in self._inputs]
        n = next((int(a.shape[0]) for a, b in zip(args, batched, strict=True) if b), 0)
        if self._bucket and n:
            args = [_pad_batch(a, batch_bucket(n)) if b else a for a, b in zip(args, batched, strict=True)]
        with torch.inference_mode():
            outs = self._run_graph(args) if self._use_graphs else self._call(args)
        if self._bucket and n:
            outs = [o[:n] if _is_batch_axis(s) else o for s, o in zip(self._outputs, outs, strict=True)]
        result: dict[str, Tensor] = {}
        for spec, o in zip(self._outputs, outs, strict=True):
            o = o.float() if o.dtype.is_floating_point else o
            result[spec.name] = o if as_torch else to_numpy(o)
        return result

    def close(self) -> None:
        self._graphs.clear()
        self._fn = self._module = None


def _is_batch_axis(spec: TensorSpec) -> bool:
    return bool(spec.shape) and spec.shape[0] == "batch"


def _pad_batch(t: Any, size: int) -> Any:
    """``t`` padded along axis 0 to ``size`` rows by repeating its last row (real values: no
    NaN/inf paths in normalisation layers)."""
    import torch

    extra = size - int(t.shape[0])
    if extra <= 0:
        return t
    return torch.cat([t, t[-1:].expand(extra, *t.shape[1:])])


def _allow_recompiles(n: int) -> None:
    """Let dynamo keep ``n`` compiled shapes per function (its default of 8 would fall back to
    eager after the ninth bucket)."""
    import torch._dynamo

    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(int(getattr(cfg, name)), n))
            return
