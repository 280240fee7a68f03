"""Weights hashing, ONNX export and export cache keys: one implementation for every model.

* :func:`weights_hash` — SHA-256 over a module's (or state dict's) names, dtypes, shapes and bytes;
  CLIP's identity (``Embedder.model_id``) and every export cache key use it.
* :func:`export_onnx` — ``torch.onnx.export`` with dynamic axes (the batch axis by default), an
  opset, the dynamo (``torch.export``) or legacy (TorchScript) exporter with the other as fallback,
  optional metadata, the exporter's chatter and tqdm's monitor thread suppressed.
* :func:`export_key` — the :class:`~framesift.engines.cache.EngineKey` of an export made by this
  torch (ONNX, or a ``torch.export`` program).

torch and onnx are imported inside the functions: importing this module stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from framesift.engines.cache import EngineKey
from framesift.errors import EngineError

__all__ = ["ONNX_INLINE_LIMIT", "Exporter", "export_key", "export_onnx", "no_tqdm_monitor", "weights_hash"]

log = logging.getLogger("framesift.engines.export")

Exporter = Literal["dynamo", "legacy"]
ONNX_INLINE_LIMIT = 1_800_000_000  # bytes; larger graphs keep their weights in <file>.data
MAX_DYNAMIC = 65536


def weights_hash(weights: Any) -> str:
    """SHA-256 (hex) over every parameter and buffer — name, dtype, shape, bytes — of a module or a
    state dict, in name order. Independent of the device the tensors live on."""
    import torch

    state: Mapping[str, Any] = weights.state_dict() if hasattr(weights, "state_dict") else weights
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the raw 16-bit words
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def export_key(
    model: str,
    weights: str,
    *,
    shape_profile: Mapping[str, Any],
    producer: str = "onnx-export",
    device: str = "any",
    precision: str = "fp32",
    **export: Any,
) -> EngineKey:
    """The engine-cache key of an export of ``model`` (a label) with weights hash ``weights`` made
    by this torch: ``producer`` ``onnx-export`` or ``torch-export``; ``device`` ``any`` for portable
    files, else :func:`~framesift.engines.cache.device_descriptor`; ``export`` the options that
    change the file (opset, exporter, graph version...). torch's version comes from its package
    metadata: a cached export is found without importing torch (1-2 s)."""
    from importlib import metadata

    return EngineKey(
        model=model,
        weights_hash=weights,
        runtime=producer,
        runtime_version=f"torch {metadata.version('torch')}",
        device=device,
        precision=precision,
        shape_profile=dict(shape_profile),
        export=dict(export),
    )


@contextlib.contextmanager
def no_tqdm_monitor() -> Iterator[None]:
    """The exporters save weights with tqdm progress bars; keep tqdm from starting its (never
    stopped) monitor thread. ``monitor_interval = 0`` is tqdm's documented switch."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield
        return
    old = tqdm.monitor_interval
    tqdm.monitor_interval = 0
    try:
        yield
    finally:
        tqdm.monitor_interval = old


def _dynamo_shapes(args: Sequence[Any], names: Sequence[str], axes: Mapping[str, Mapping[int, str]]) -> Any:
    """``dynamic_axes`` (input name → {axis: name}) as torch.export dynamic shapes, one per argument;
    axes sharing a name share one dimension."""
    import torch

    dims: dict[str, Any] = {}
    out = []
    for i, _ in enumerate(args):
        spec = axes.get(names[i], {}) if i < len(names) else {}
        out.append(
            {a: dims.setdefault(n, torch.export.Dim(n, min=1, max=MAX_DYNAMIC)) for a, n in spec.items()}
            or None
        )
    return tuple(out)


def export_onnx(
    module: Any,
    args: Sequence[Any],
    path: str | Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = 18,
    exporter: Exporter = "dynamo",
    fallback: bool = True,
    metadata: Mapping[str, str] | None = None,
    label: str = "model",
) -> Exporter:
    """Export ``module(*args)`` to ``path``; returns the exporter that succeeded.

    ``dynamic_axes`` maps input/output names to ``{axis: name}``; None makes axis 0 of every input
    and output a dynamic ``batch``; ``{}`` exports static shapes. ``exporter`` ``dynamo``
    (torch.export → ONNX, the maintained path in torch 2.x) or ``legacy`` (TorchScript) is tried
    first, the other one after it when ``fallback``. ``metadata`` is written into the file's
    ``metadata_props``; a graph over :data:`ONNX_INLINE_LIMIT` keeps its weights in ``<path>.data``.
    """
    import torch

    path = Path(path)
    axes = {n: {0: "batch"} for n in (*input_names, *output_names)} if dynamic_axes is None else dynamic_axes
    order: list[Exporter] = [exporter]
    if fallback:
        order += [e for e in ("dynamo", "legacy") if e != exporter]
    errors = []
    for kind in order:
        common: dict[str, Any] = dict(
            input_names=list(input_names), output_names=list(output_names), opset_version=opset
        )
        chatter = io.StringIO()  # the dynamo exporter prints progress lines on stdout
        try:
            with (
                torch.no_grad(),
                contextlib.redirect_stdout(chatter),
                no_tqdm_monitor(),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore")
                if kind == "dynamo":
                    shapes = _dynamo_shapes(args, input_names, axes)
                    torch.onnx.export(
                        module,
                        tuple(args),
                        str(path),
                        dynamo=True,
                        dynamic_shapes=shapes if any(s is not None for s in shapes) else None,
                        verbose=False,
                        **common,
                    )
                else:
                    torch.onnx.export(
                        module,
                        tuple(args),
                        str(path),
                        dynamo=False,
                        dynamic_axes={k: dict(v) for k, v in axes.items()} or None,
                        **common,
                    )
        except Exception as exc:
            errors.append(f"{kind}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            if kind != order[-1]:
                log.warning("ONNX export with the %s exporter failed (%s); trying the next", kind, errors[-1])
            continue
        if metadata:
            _add_metadata(path, metadata)
        return kind
    raise EngineError(f"ONNX export of {label} failed: {'; '.join(errors)}", engine=label)


def _add_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    """Write ``metadata`` into the ONNX file at ``path``, folding the exporter's external-data files
    into ``<path>.data`` (kept only for graphs over the inline limit)."""
    import onnx

    m = onnx.load(str(path))  # pulls in any external data the exporter wrote
    for k, v in metadata.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    for stray in path.parent.iterdir():  # the exporter's external-data files
        if stray != path and stray.name.startswith(path.name):
            stray.unlink()
    onnx.save(
        m,
        str(path),
        save_as_external_data=m.ByteSize() > ONNX_INLINE_LIMIT,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )
