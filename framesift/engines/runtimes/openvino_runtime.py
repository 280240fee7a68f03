"""OpenVINO: ONNX exports converted once to OpenVINO IR (cached), compiled for the CPU or an Intel GPU.

The IR is keyed in the engine cache by the OpenVINO version, the device, the precision, the CPU's
instruction set with any cap on it (:func:`framesift.engines.isa.isa_descriptor`) and, for INT8, a
hash of the calibration set. Weights stay fp32 in the IR (``compress_to_fp16=False``); the precision a
device computes in is a compile hint, given explicitly: OpenVINO would otherwise pick bf16 on CPUs
that have it, and ``fp32`` must mean fp32.

OpenVINO's package sends a usage event when imported unless the user opted out; framesift runs
offline, often at stations, so :func:`import_openvino` declines it unless the user opted in
(``opt_in_out --opt_in`` writes that choice, and it is kept).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.cache import EngineCache, EngineKey, device_descriptor
from framesift.engines.isa import isa_descriptor
from framesift.engines.quantize import Int8Build, Int8Refused, gate, quantize_model
from framesift.engines.runtimes.base import Runtime, Tensor, TensorSpec, host_outputs, to_numpy
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines.openvino")

IR_FILE = "model.xml"
# the precision a device computes in, as OpenVINO names it (int8 IRs carry their own FakeQuantize ops;
# the layers left in float run in fp32)
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
COMPILED_DIR = "openvino-compiled"  # OpenVINO's own cache of compiled models, in the engine cache
_NP_TYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32}


def import_openvino() -> Any:
    """``import openvino`` with its telemetry declined (unless the user opted in): patched on every
    call, since another package (NNCF) may have imported openvino first; telemetry starts only when
    a model is converted."""
    try:
        from openvino_telemetry.utils import opt_in_checker as oic
    except Exception:  # another telemetry package version, or none: nothing to decline
        pass
    else:
        check = oic.OptInChecker.check
        if not getattr(check, "framesift", False):

            def declined(self: Any, *args: Any, **kw: Any) -> Any:
                accepted = oic.ConsentCheckResult.ACCEPTED
                return accepted if check(self, *args, **kw) == accepted else oic.ConsentCheckResult.DECLINED

            declined.framesift = True  # type: ignore[attr-defined]
            oic.OptInChecker.check = declined
    import openvino

    return openvino


def ov_device(device: str) -> str:
    """framesift's device name → OpenVINO's: ``cpu`` → ``CPU``, ``gpu`` → ``GPU``, ``gpu:1`` → ``GPU.1``."""
    kind, _, idx = device.partition(":")
    return kind.upper() + (f".{idx}" if idx else "")


def version() -> str:
    ov = import_openvino()
    return str(ov.get_version()).split("-", 1)[0]


def ir_key(
    label: str,
    weights_hash: str,
    *,
    device: str,
    precision: str,
    shape_profile: Mapping[str, Any] | None = None,
    calibration: str | None = None,
) -> EngineKey:
    """The engine cache key of an OpenVINO IR (see the module doc for what it holds)."""
    dev = device_descriptor("cpu") if device == "cpu" else ov_device(device)
    export: dict[str, Any] = {"isa": isa_descriptor(), "compress_to_fp16": False}
    if calibration is not None:
        export["calibration"] = calibration
    return EngineKey(
        model=label,
        weights_hash=weights_hash,
        runtime="openvino-ir",
        runtime_version=version(),
        device=dev,
        precision=precision,
        shape_profile=dict(shape_profile or {}),
        export=export,
    )


def cached_ir(
    cache: EngineCache,
    onnx_path: str | os.PathLike[str],
    key: EngineKey,
    transform: Callable[[Any], Any] | None = None,
) -> Path:
    """The IR of ``onnx_path`` under ``key`` (converted on a miss; ``transform`` — INT8 quantisation —
    applied to the converted model before it is saved)."""

    def build(out: Path) -> None:
        ov = import_openvino()
        model = ov.convert_model(str(onnx_path))
        if transform is not None:
            model = transform(model)
        ov.save_model(model, str(out), compress_to_fp16=False)

    return cache.get_or_build(key, IR_FILE, build)


class OpenVinoRuntime(Runtime):
    """An OpenVINO compiled model over an ONNX file or an IR (``.xml``), one infer request, locked."""

    name = "openvino"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | Any,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        compile_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        """``compile_cache``: a folder where OpenVINO keeps compiled models (a later load skips the
        compilation: 0.4 s → 0.06 s for TransNetV2)."""
        ov = import_openvino()
        super().__init__(device=device, precision=precision)  # type: ignore[arg-type]
        model: Any = model_path  # a path, or an in-memory ov.Model (INT8 gates compare before saving)
        is_path = isinstance(model_path, (str, os.PathLike))
        path = Path(model_path) if is_path else Path("model")
        if is_path and not path.is_file():
            raise EngineError(f"openvino: model file not found: {path}", engine=self.name)
        core = ov.Core()
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": _HINTS.get(precision, "f32"),
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
        }
        if compile_cache is not None:
            config["CACHE_DIR"] = str(compile_cache)
        if device == "cpu":
            from framesift.threads import thread_plan

            config["INFERENCE_NUM_THREADS"] = int(threads or thread_plan().inference)
        try:
            graph = core.read_model(str(path)) if is_path else model
            self._compiled = core.compile_model(graph, ov_device(device), config)
        except Exception as exc:
            raise EngineError(
                f"openvino: cannot compile {path.name} for {ov_device(device)}: {_last_line(exc)}",
                engine=self.name,
            ) from exc
        self._name = path.name
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()
        self._inputs = [
            TensorSpec(p.get_any_name(), p.get_element_type().get_type_name(), _shape(p))
            for p in self._compiled.inputs
        ]
        self._outputs = [
            TensorSpec(p.get_any_name(), p.get_element_type().get_type_name(), _shape(p))
            for p in self._compiled.outputs
        ]
        log.debug("openvino: %s compiled for %s (%s)", path.name, ov_device(device), config)

    def describe(self) -> str:
        return f"openvino[{ov_device(self.device)}] on {self.device} ({self.precision})"

    def run(self, feeds: Mapping[str, Tensor], *, as_torch: bool = False) -> dict[str, Tensor]:
        missing = [s.name for s in self._inputs if s.name not in feeds]
        if missing:
            raise EngineError(f"openvino: missing inputs {missing}", engine=self.name)
        arrays = {
            s.name: np.ascontiguousarray(to_numpy(feeds[s.name]), dtype=_NP_TYPES.get(s.dtype))
            for s in self._inputs
        }
        with self._lock:
            try:
                self._request.infer(arrays)
            except Exception as exc:  # OpenVINO raises RuntimeError with multi-line text
                raise EngineError(
                    f"openvino: {self._name} failed on {ov_device(self.device)}: {_last_line(exc)}",
                    engine=self.name,
                ) from exc
            outs = [np.array(self._request.get_output_tensor(i).data) for i in range(len(self._outputs))]
        return host_outputs(self._outputs, outs, as_torch)

    def close(self) -> None:
        self._request = None
        self._compiled = None


def _last_line(exc: BaseException) -> str:
    """The message of an OpenVINO exception: its text is a chain of ``Exception from <file>:<line>:``
    lines, the cause last."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from ")]
    if useful:
        return useful[-1]
    return lines[0] if lines else type(exc).__name__


def _shape(port: Any) -> tuple[int | str | None, ...]:
    return tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())


def openvino_engine(
    cache: EngineCache,
    onnx_path: str | os.PathLike[str],
    *,
    label: str,
    weights_hash: str,
    device: str,
    precision: str,
    threads: int | None = None,
    shape_profile: Mapping[str, Any] | None = None,
    int8: Int8Build | None = None,
) -> tuple[OpenVinoRuntime, Path]:
    """An :class:`OpenVinoRuntime` over the cached IR of ``onnx_path`` (converted on a miss), and the IR."""
    calibration = int8.calibration.digest if int8 is not None else None
    key = ir_key(
        label,
        weights_hash,
        device=device,
        precision=precision,
        shape_profile=shape_profile,
        calibration=calibration,
    )
    if int8 is None:
        ir = cached_ir(cache, onnx_path, key)
    else:
        spec = int8

        def build(out: Path) -> None:  # quantise, gate, and only then publish
            log.info(
                "%s: building the INT8 engine once (calibration: %s; then a gate against fp32; "
                "10-40 s), kept in the engine cache",
                label,
                spec.calibration.describe(),
            )
            ov = import_openvino()
            fp32 = ov.convert_model(str(onnx_path))
            quantised = quantize_model(
                fp32.clone(),
                spec.feeds(spec.calibration.frames),
                transformer=spec.transformer,
                ignored_types=spec.ignored_types,
            )
            held_out = spec.feeds(spec.calibration.held_out)
            ref = OpenVinoRuntime(fp32, device=device, precision="fp32", threads=threads)
            low = OpenVinoRuntime(quantised, device=device, precision="int8", threads=threads)
            ok, measured = spec.check(low.run, ref.run, held_out)
            gate(label, ok, measured, spec.calibration)
            ov.save_model(quantised, str(out), compress_to_fp16=False)

        ir = _int8_ir(cache, key, build)
        log.info("%s: INT8 engine (calibration: %s)", label, int8.calibration.describe())
    compiled = cache.root / COMPILED_DIR
    return OpenVinoRuntime(
        ir, device=device, precision=precision, threads=threads, compile_cache=compiled
    ), ir


def _int8_ir(cache: EngineCache, key: EngineKey, build: Callable[[Path], None]) -> Path:
    """The cached INT8 IR of ``key``, built on a miss; a refusal by the parity gate is remembered
    (a marker beside the cache's entries), so the same weights and calibration are not quantised
    again only to be refused."""
    marker = cache.root / f".int8-refused-{key.digest}"
    if marker.is_file():
        try:
            said = marker.read_text(encoding="utf-8", errors="replace").strip().splitlines()[0][:600]
        except (OSError, IndexError):
            said = ""
        raise Int8Refused(said or f"{key.model}: INT8 engine refused earlier", engine="openvino")
    try:
        return cache.get_or_build(key, IR_FILE, build)
    except Int8Refused as exc:
        with contextlib.suppress(OSError):
            marker.write_text(str(exc), encoding="utf-8")
        raise


class OpenVinoSession:
    """An :class:`OpenVinoRuntime` whose outputs come back as a list in graph order, like
    :class:`~framesift.engines.runtimes.ort_runtime.OnnxSession` (the detectors index them)."""

    providers = ("OpenVINO",)

    def __init__(self, runtime: OpenVinoRuntime, path: Path) -> None:
        self.runtime = runtime
        self.path = path
        self.input_names = [t.name for t in runtime.inputs]
        self.output_names = [t.name for t in runtime.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            out = self.runtime.run(feeds)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(
                f"OpenVINO model {self.path.name} failed: {_last_line(exc)}", engine="openvino"
            ) from exc
        return [np.asarray(out[n]) for n in self.output_names]

    def close(self) -> None:
        self.runtime.close()
