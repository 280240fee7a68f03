"""TensorRT runtime: engines built from ONNX with a dynamic-batch optimisation profile, FP16 and a
timing cache; executed on torch CUDA tensors.

TensorRT is an optional extra (``pip install 'framesift[tensorrt]'``); this module imports it lazily
and every entry point raises a clear EngineError where it is missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framesift.engines.cache import EngineCache, EngineKey, device_descriptor, file_sha256
from framesift.engines.runtimes.base import Precision, Runtime, Tensor, TensorSpec, to_numpy
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines.tensorrt")


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError(
            f"tensorrt runtime: the tensorrt package is not installed ({exc}); "
            "pip install 'framesift[tensorrt]' on a machine with an NVIDIA GPU",
            engine="tensorrt",
        ) from None
    return trt


@dataclass(frozen=True)
class PrecisionMode:
    """How a TensorRT build reaches a precision: a builder flag (weak typing, TensorRT 10) or a
    strongly typed network whose ONNX is already in that precision (TensorRT 11 removed
    ``BuilderFlag.FP16``/``BF16``: docs.nvidia.com/deeplearning/tensorrt, "Migrating from TensorRT
    10.x to 11.x", Removed Python APIs)."""

    strongly_typed: bool
    builder_flag: str | None  # "FP16" | "BF16" | None
    onnx_precision: Precision  # the precision the ONNX export must have


def trt_major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def precision_mode(trt_version: str, precision: Precision) -> PrecisionMode:
    """The build recipe for ``precision`` on TensorRT ``trt_version`` (see :class:`PrecisionMode`)."""
    if trt_major(trt_version) >= 11:
        if precision == "bf16":
            raise EngineError(
                f"tensorrt {trt_version}: bf16 needs a strongly typed bf16 ONNX export, which framesift "
                "does not make; use precision: fp16 (or fp32), or install tensorrt<11",
                engine="tensorrt",
            )
        return PrecisionMode(True, None, precision)
    flag = {"fp16": "FP16", "bf16": "BF16"}.get(precision)
    return PrecisionMode(False, flag, "fp32")


def profile_for(opt_batch: int, max_batch: int) -> dict[str, int]:
    """The batch optimisation profile: 1 … ``opt_batch`` … ``max_batch`` (the configured maximum,
    never a fixed cap below it)."""
    top = max(1, max_batch)
    return {"min": 1, "opt": max(1, min(opt_batch, top)), "max": top}


def batch_slices(batch: int, limit: int) -> list[tuple[int, int]]:
    """``[start, stop)`` slices of a ``batch`` that each fit a profile maximum of ``limit``."""
    if limit < 1:
        raise ValueError(f"profile maximum must be >= 1, got {limit}")
    return [(s, min(s + limit, batch)) for s in range(0, batch, limit)] or [(0, 0)]


def build_engine(
    onnx_path: str | os.PathLike[str],
    *,
    precision: Precision,
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    timing_cache: str | os.PathLike[str] | None = None,
    workspace_gb: float = 4.0,
) -> bytes:
    """Parse ``onnx_path`` and return a serialised engine whose batch axis (axis 0 of every input)
    spans ``min_batch..max_batch``; the timing cache file is read and updated when given."""
    trt = import_tensorrt()
    mode = precision_mode(str(trt.__version__), precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if mode.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"tensorrt: cannot parse {onnx_path}: {errors}", engine="tensorrt")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if mode.builder_flag is not None:
        config.set_flag(getattr(trt.BuilderFlag, mode.builder_flag))
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        rest = tuple(inp.shape)[1:]
        if any(d < 0 for d in rest):
            raise EngineError(
                f"tensorrt: input {inp.name} has dynamic non-batch axes {tuple(inp.shape)}", engine="tensorrt"
            )
        profile.set_shape(inp.name, (min_batch, *rest), (opt_batch, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    cache_bytes = b""
    if timing_cache is not None and Path(timing_cache).is_file():
        cache_bytes = Path(timing_cache).read_bytes()
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"tensorrt: engine build failed for {onnx_path}", engine="tensorrt")
    if timing_cache is not None:
        tmp = Path(f"{timing_cache}.tmp{os.getpid()}")
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
        os.replace(tmp, timing_cache)
    return bytes(serialized)


class TensorRTRuntime(Runtime):
    """Deserialises an engine and runs it on torch CUDA tensors (``execute_async_v3``)."""

    name = "tensorrt"

    def __init__(self, engine_bytes: bytes, *, device: str = "cuda", precision: Precision = "fp16") -> None:
        trt = import_tensorrt()
        import torch

        super().__init__(device=device, precision=precision)
        if not torch.cuda.is_available():
            raise EngineError("tensorrt runtime needs a CUDA device (none found)", engine=self.name)
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self._engine is None:
            raise EngineError(
                "tensorrt: engine could not be deserialised (stale or foreign)", engine=self.name
            )
        self._context = self._engine.create_execution_context()
        self._max_batch: int | None = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[TensorSpec] = []
        for i in range(self._engine.num_io_tensors):
            n = self._engine.get_tensor_name(i)
            spec = TensorSpec(
                n, str(self._engine.get_tensor_dtype(n)), tuple(self._engine.get_tensor_shape(n))
            )
            if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT:
                self._inputs.append(spec)
            else:
                self._outputs.append(spec)

    def _torch_dtype(self, name: str) -> Any:
        import torch

        dt = self._engine.get_tensor_dtype(name)
        table = {
            self._trt.float32: torch.float32,
            self._trt.float16: torch.float16,
            self._trt.int32: torch.int32,
            self._trt.int64: torch.int64,
        }
        if hasattr(self._trt, "bfloat16"):
            table[self._trt.bfloat16] = torch.bfloat16
        return table[dt]

    def _profile_max(self) -> int:
        """The largest batch the engine's optimisation profile 0 accepts (axis 0 of the inputs)."""
        tops = [int(self._engine.get_tensor_profile_shape(s.name, 0)[2][0]) for s in self._inputs]
        return min(tops) if tops else 1

    def run(self, feeds: Mapping[str, Tensor], *, as_torch: bool = False) -> dict[str, Tensor]:
        import torch

        for s in self._inputs:
            if s.name not in feeds:
                raise EngineError(f"tensorrt: missing input {s.name}", engine=self.name)
        inputs = {
            s.name: torch.as_tensor(feeds[s.name]).to(self.device, self._torch_dtype(s.name))
            for s in self._inputs
        }
        batch = int(next(iter(inputs.values())).shape[0]) if inputs else 0
        if self._max_batch is None:
            self._max_batch = self._profile_max()
        parts = [
            self._run_slice({n: t[a:b] for n, t in inputs.items()})
            for a, b in batch_slices(batch, self._max_batch)
        ]
        result: dict[str, Tensor] = {}
        for s in self._outputs:
            o = parts[0][s.name] if len(parts) == 1 else torch.cat([p[s.name] for p in parts])
            o = o.float() if o.dtype.is_floating_point else o
            result[s.name] = o if as_torch else to_numpy(o)
        return result

    def _run_slice(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        stream = torch.cuda.current_stream()
        keep = []
        for name, x in inputs.items():
            t = x.contiguous()
            keep.append(t)
            if not self._context.set_input_shape(name, tuple(t.shape)):
                raise EngineError(
                    f"tensorrt: input {name} shape {tuple(t.shape)} is outside the engine's profile "
                    f"(batch 1..{self._max_batch}); rebuild the engine with a larger max_batch",
                    engine=self.name,
                )
            self._context.set_tensor_address(name, t.data_ptr())
        outs: dict[str, Any] = {}
        for s in self._outputs:
            shape = tuple(self._context.get_tensor_shape(s.name))
            o = torch.empty(shape, dtype=self._torch_dtype(s.name), device=self.device)
            outs[s.name] = o
            self._context.set_tensor_address(s.name, o.data_ptr())
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise EngineError("tensorrt: execution failed", engine=self.name)
        return outs

    def close(self) -> None:
        self._context = self._engine = None


def cached_engine(
    cache: EngineCache,
    onnx_path: Path,
    filename: str,
    *,
    label: str,
    weights_hash: str,
    device: str,
    precision: Precision,
    opt_batch: int,
    max_batch: int,
) -> Path:
    """The TensorRT plan of ``onnx_path`` for ``device`` from ``cache``, built on a miss (batch
    profile 1 … ``opt_batch`` … ``max_batch``; one timing cache per GPU model beside the entries)."""
    trt = import_tensorrt()
    dev = device_descriptor(device)
    timing = cache.root / f"timing-{dev.replace(':', '_').replace(' ', '_')}.cache"
    profile = profile_for(opt_batch, max_batch)
    key = EngineKey(
        model=label,
        weights_hash=weights_hash,
        runtime="tensorrt",
        runtime_version=str(trt.__version__),
        device=dev,
        precision=precision,
        shape_profile=profile,
        export={"onnx_sha256": file_sha256(onnx_path)},
    )

    def build(out: Path) -> None:
        out.write_bytes(
            build_engine(
                onnx_path,
                precision=precision,
                min_batch=profile["min"],
                opt_batch=profile["opt"],
                max_batch=profile["max"],
                timing_cache=timing,
            )
        )

    return cache.get_or_build(key, filename, build)
