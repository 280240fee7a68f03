"""ONNX Runtime: TensorRT → CUDA → CPU execution providers, IO binding on the GPU."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.runtimes.base import Precision, Runtime, Tensor, TensorSpec, host_outputs, to_numpy
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines.onnxruntime")

PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_NP_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """Execution providers for ``device`` in order of preference, among ``available``."""
    if device.startswith("cuda"):
        chosen = [p for p in PROVIDER_PREFERENCE if p in available]
        if "CUDAExecutionProvider" not in chosen and "TensorrtExecutionProvider" not in chosen:
            raise EngineError(
                "onnxruntime: device 'cuda' requested but this onnxruntime has no CUDA/TensorRT provider "
                f"(available: {', '.join(available)}); pip install onnxruntime-gpu, or use device: cpu",
                engine="onnxruntime",
            )
        return chosen
    return ["CPUExecutionProvider"]


def default_threads() -> int:
    """Intra-op threads: the thread plan's (the CPUs this process may use; ``FRAMESIFT_THREADS``
    overrides)."""
    from framesift.threads import thread_plan

    return thread_plan().inference


class OrtRuntime(Runtime):
    """An ``onnxruntime.InferenceSession`` over an ONNX file."""

    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | os.PathLike[str],
        *,
        device: str = "cpu",
        precision: Precision = "fp32",
        threads: int | None = None,
        trt_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        super().__init__(device=device, precision=precision)
        path = Path(onnx_path)
        if not path.is_file():
            raise EngineError(f"onnxruntime: ONNX file not found: {path}", engine=self.name)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = threads or default_threads()
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        from framesift.threads import thread_plan

        if not thread_plan().spin:  # few cores: waiting threads would take the decoders' cores
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers: list[Any] = []
        for p in choose_providers(device, ort.get_available_providers()):
            if p == "TensorrtExecutionProvider":
                opts: dict[str, Any] = {"trt_fp16_enable": precision == "fp16"}
                if trt_cache_dir is not None:
                    Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                    opts.update(
                        trt_engine_cache_enable=True,
                        trt_engine_cache_path=str(trt_cache_dir),
                        trt_timing_cache_enable=True,
                        trt_timing_cache_path=str(trt_cache_dir),
                    )
                providers.append((p, opts))
            elif p == "CUDAExecutionProvider":
                providers.append((p, {"device_id": _device_index(device)}))
            else:
                providers.append(p)
        try:
            self._session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise EngineError(f"onnxruntime: cannot load {path}: {exc}", engine=self.name) from exc
        self.providers = list(self._session.get_providers())
        self._on_gpu = self.providers[0] != "CPUExecutionProvider"
        self._inputs = [TensorSpec(i.name, i.type, tuple(i.shape)) for i in self._session.get_inputs()]
        self._outputs = [TensorSpec(o.name, o.type, tuple(o.shape)) for o in self._session.get_outputs()]
        log.debug("onnxruntime session on %s (providers %s)", path.name, self.providers)

    def describe(self) -> str:
        return f"onnxruntime[{self.providers[0]}] on {self.device} ({self.precision})"

    def run(self, feeds: Mapping[str, Tensor], *, as_torch: bool = False) -> dict[str, Tensor]:
        missing = [s.name for s in self._inputs if s.name not in feeds]
        if missing:
            raise EngineError(f"onnxruntime: missing inputs {missing}", engine=self.name)
        if self._on_gpu:
            outs = self._run_bound(feeds)
        else:
            arrays = {
                s.name: np.ascontiguousarray(to_numpy(feeds[s.name]), dtype=_NP_TYPES.get(s.dtype))
                for s in self._inputs
            }
            outs = self._session.run([o.name for o in self._outputs], arrays)
        return host_outputs(self._outputs, outs, as_torch)

    def _run_bound(self, feeds: Mapping[str, Tensor]) -> list[np.ndarray]:
        """IO binding: device tensors are bound in place (no host round trip for inputs)."""
        io = self._session.io_binding()
        keep: list[Any] = []
        for s in self._inputs:
            x = feeds[s.name]
            want = _NP_TYPES.get(s.dtype, np.float32)
            if not isinstance(x, np.ndarray) and getattr(x, "is_cuda", False):
                import torch

                t = x.to(dtype=torch.from_numpy(np.zeros(0, want)).dtype).contiguous()
                keep.append(t)
                io.bind_input(s.name, "cuda", _device_index(self.device), want, tuple(t.shape), t.data_ptr())
            else:
                io.bind_cpu_input(s.name, np.ascontiguousarray(to_numpy(x), dtype=want))
        for o in self._outputs:
            io.bind_output(o.name, "cuda", _device_index(self.device))
        if keep:
            sync_torch_stream(self.device)
        self._session.run_with_iobinding(io)
        return list(io.copy_outputs_to_cpu())

    def close(self) -> None:
        self._session = None


def sync_torch_stream(device: str) -> None:
    """Wait for torch's pending work on ``device`` before ONNX Runtime reads bound CUDA tensors.

    The inputs (and the casts that made them) are queued on torch's current stream; ONNX Runtime's
    CUDA provider computes on its own stream and ``run_with_iobinding`` synchronises only inputs it
    copied itself (``IOBinding.synchronize_inputs`` is for those; onnxruntime/python/
    onnxruntime_inference_collection.py), so without this wait it may read half-written memory.
    """
    import torch

    torch.cuda.current_stream(torch.device(device)).synchronize()


def _device_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


class OnnxSession:
    """An :class:`OrtRuntime` whose outputs come back as a list in graph order (the detectors'
    post-processing indexes them), with failures as one-line EngineErrors naming the file.

    ``device`` is a resolved device (``cpu``, ``cuda``, ``cuda:N``): the engine plan decides it.
    """

    def __init__(self, path: str | os.PathLike[str], *, device: str, threads: int | None = None) -> None:
        self.path = Path(path)
        self.device = device
        self.runtime = OrtRuntime(self.path, device=device, threads=threads)
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

    def close(self) -> None:
        self.runtime.close()
