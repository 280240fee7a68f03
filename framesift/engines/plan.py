"""The engine plan: which runtime, device and precision run a model, and why — decided here only.

Every model (CLIP's towers, YOLO-World, SAM, and any later one) calls :func:`plan_engine`; so do
``build_embedder`` and ``framesift doctor``. A model is one row of :data:`MODELS`: the (runtime,
device) pairs that can run it, fastest first, and the precisions each pair runs (the first is what
``precision: auto`` picks). The rules that hold for all models:

* ``runtime``/``device`` ``auto`` → the first pair of the model's order that is available here (and
  can run the requested precision and artefact);
* ``precision: auto`` → the pair's default (fp16 on CUDA where the pair runs it); **bf16** on a CPU
  with native bf16 (AMX / AVX512-BF16) when the model opts in — torch on the CPU (or the runtimes the
  model names for that CPU: OpenVINO for TransNetV2) then moves ahead of the other CPU
  runtimes; fp16 runs on CUDA only; INT8 only when asked, except for weights whose INT8 quality
  was measured (TransNetV2's package weights: INT8 on OpenVINO where the CPU has VNNI and no AMX);
* an ``.onnx`` artefact runs on onnxruntime (or TensorRT), a ``.pt2`` on torch; a ``.pt2`` also
  fixes its precision and device;
* an impossible explicit combination raises :class:`~framesift.errors.ConfigError` (exit 2) with one
  line naming the option and the fix.

OpenVINO runs ONNX exports too (converted to its IR, cached). A new runtime is a new name in
:mod:`framesift.engines.runtimes` plus rows in the models that it runs; a new model (TransNetV2) is a new :data:`MODELS` entry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from framesift.engines.isa import bf16_cap, cpu_bf16_kind, fbgemm_kernels, int8_kernels
from framesift.engines.quantize import nncf_installed
from framesift.engines.runtimes import RuntimeInfo, runtime_infos
from framesift.engines.runtimes.base import Precision
from framesift.errors import ConfigError

__all__ = [
    "ARTEFACT_RUNTIMES",
    "MODELS",
    "Artefact",
    "EnginePlan",
    "ModelRules",
    "cpu_bf16_kind",
    "plan_all",
    "plan_engine",
]

log = logging.getLogger("framesift.engines.plan")

PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "bf16", "int8")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA"}

ArtefactKind = Literal["onnx", "pt2"]
ARTEFACT_RUNTIMES: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "tensorrt", "openvino"),
    "pt2": ("torch",),
}
"""Which runtimes can run an exported file of each kind."""
ARTEFACT_NAMES = {"onnx": "ONNX", "pt2": "torch.export (.pt2)"}


@dataclass(frozen=True)
class Artefact:
    """An exported file a model will run: its kind fixes the runtime; a ``.pt2`` program also fixes
    the precision and device it was exported for."""

    path: str
    kind: ArtefactKind
    precision: Precision | None = None
    device: str | None = None

    @classmethod
    def of(cls, path: str | Path) -> Artefact | None:
        """The artefact at ``path`` (``.onnx``, ``.pt2`` or a directory of ONNX files); None for
        weights (``.pt`` checkpoints and the like), which are exported for whatever the plan picks."""
        p = Path(path)
        if p.suffix == ".pt2":
            return cls(str(p), "pt2")
        if p.suffix == ".onnx" or p.is_dir():
            return cls(str(p), "onnx")
        return None

    @property
    def name(self) -> str:
        return Path(self.path).name or self.path


@dataclass(frozen=True)
class ModelRules:
    """How one model may run: ``order`` lists the (runtime, device kind) pairs fastest first;
    ``precisions`` what each pair runs, the first being ``precision: auto``'s choice."""

    label: str
    precisions: Mapping[tuple[str, str], tuple[Precision, ...]]
    order: tuple[tuple[str, str], ...]
    cpu_bf16: bool = False  # auto → bf16 on torch-cpu where the CPU has native bf16
    # the CPU runtimes that run bf16 under auto, by the CPU's kind of bf16 (the first available wins)
    bf16_runtimes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # INT8 quality measured on the weights framesift ships for this model (TransNetV2's): auto runs
    # those weights in INT8 on OpenVINO where the CPU has VNNI but no AMX
    shipped_int8: bool = False
    # the CPU runtimes that run precision: int8 first where the INT8 kernels lack VNNI
    int8_without_vnni: tuple[str, ...] = ()
    artefact_hint: str = "or give the weights so framesift exports them for the runtime you want"

    @property
    def runtimes(self) -> tuple[str, ...]:
        return tuple(sorted({r for r, _ in self.order}))


MODELS: dict[str, ModelRules] = {
    # onnxruntime before torch on the CPU: never slower for CLIP, much faster at batch 1; OpenVINO
    # between them in fp32 (measured: not faster than onnxruntime on AVX2, faster than torch).
    # precision: int8 runs on OpenVINO (NNCF, static) where the CPU has VNNI, else on torch (dynamic,
    # FBGEMM's AVX2 kernels): without VNNI OpenVINO's INT8 fully connected layers are no faster than
    # fp32 (image tower, one thread, AVX2 cap: 10.1 vs 10.4 img/CPU-s), FBGEMM's 1.7x fp32
    "clip": ModelRules(
        label="CLIP",
        order=(
            ("tensorrt", "cuda"),
            ("onnxruntime", "cuda"),
            ("torch", "cuda"),
            ("onnxruntime", "cpu"),
            ("openvino", "cpu"),
            ("torch", "cpu"),
        ),
        precisions={
            ("openvino", "cpu"): ("fp32", "int8"),
            ("tensorrt", "cuda"): ("fp16", "fp32", "bf16"),
            ("onnxruntime", "cuda"): ("fp16", "fp32"),
            ("torch", "cuda"): ("fp16", "fp32", "bf16"),
            ("onnxruntime", "cpu"): ("fp32",),
            ("torch", "cpu"): ("fp32", "bf16", "int8"),
        },
        cpu_bf16=True,
        int8_without_vnni=("torch",),
        artefact_hint="or give model/pretrained/checkpoint instead",
    ),
    # torch fp32 first: the text tower runs once per prompt set, needs no export, and its
    # embeddings equal open_clip's
    "clip_text": ModelRules(
        label="CLIP text tower",
        order=(
            ("torch", "cuda"),
            ("torch", "cpu"),
            ("onnxruntime", "cuda"),
            ("onnxruntime", "cpu"),
            ("openvino", "cpu"),
        ),
        precisions={
            ("openvino", "cpu"): ("fp32",),
            ("torch", "cuda"): ("fp32", "fp16", "bf16"),
            ("torch", "cpu"): ("fp32", "bf16"),
            ("onnxruntime", "cuda"): ("fp32", "fp16"),
            ("onnxruntime", "cpu"): ("fp32",),
        },
        artefact_hint="or give model/pretrained/checkpoint instead",
    ),
    # PyTorch on CUDA and on native-bf16 CPUs (about 2x fp32), else ONNX Runtime in fp32 (OpenVINO
    # fp32 measured level with it, PyTorch fp32 below); INT8 on OpenVINO, opt-in
    "yolo_world": ModelRules(
        label="YOLO-World",
        order=(
            ("torch", "cuda"),
            ("onnxruntime", "cuda"),
            ("onnxruntime", "cpu"),
            ("openvino", "cpu"),
            ("torch", "cpu"),
        ),
        precisions={
            ("openvino", "cpu"): ("fp32", "int8"),
            ("torch", "cuda"): ("fp16", "fp32", "bf16"),
            ("torch", "cpu"): ("fp32", "bf16"),
            ("onnxruntime", "cuda"): ("fp32",),
            ("onnxruntime", "cpu"): ("fp32",),
        },
        cpu_bf16=True,
        artefact_hint="or pass the .pt checkpoint so framesift exports it for the runtime you want",
    ),
    # encoder and decoder run on ONNX Runtime in fp32
    "sam": ModelRules(
        label="SAM",
        order=(("onnxruntime", "cuda"), ("onnxruntime", "cpu"), ("openvino", "cpu")),
        precisions={
            ("onnxruntime", "cuda"): ("fp32",),
            ("onnxruntime", "cpu"): ("fp32",),
            ("openvino", "cpu"): ("fp32",),
        },
        artefact_hint="or give a SAM model name (vit_t, vit_b, ...) to export it",
    ),
    # TransNetV2: torch fp16 on CUDA; on the CPU bf16 where the CPU has native bf16 (torch: 2.6x fp32;
    # OpenVINO with AMX: 2.6x torch bf16), else for the package's weights INT8 on OpenVINO where
    # the CPU has VNNI, else ONNX Runtime fp32 (its probabilities equal the reference's within 1e-6)
    "transnet": ModelRules(
        label="TransNetV2",
        order=(
            ("torch", "cuda"),
            ("onnxruntime", "cuda"),
            ("onnxruntime", "cpu"),
            ("openvino", "cpu"),
            ("torch", "cpu"),
        ),
        precisions={
            ("torch", "cuda"): ("fp16", "fp32", "bf16"),
            ("onnxruntime", "cuda"): ("fp32", "fp16"),
            ("torch", "cpu"): ("fp32", "bf16"),
            ("onnxruntime", "cpu"): ("fp32",),
            ("openvino", "cpu"): ("fp32", "int8", "bf16"),
        },
        cpu_bf16=True,
        # OpenVINO's 3D form in bf16 beats torch's 2D form: 2.6x with AMX, 1.4x with AVX512-BF16
        bf16_runtimes={"AMX": ("openvino", "torch"), "AVX512-BF16": ("openvino", "torch")},
        # without AMX, INT8 with VNNI: 2.5x torch bf16, 1.8x OpenVINO bf16 (AVX512-BF16 EPYC), 3.9x ONNX
        # Runtime fp32; F1 0.951 on held-out montages (bf16 0.933); without VNNI its gate refuses it
        shipped_int8=True,
        artefact_hint="or give the .pth weights so framesift exports them for the runtime you want",
    ),
}
"""Every model framesift runs, by the kind name passed to :func:`plan_engine`."""


@dataclass(frozen=True)
class EnginePlan:
    """What runs a model: ``runtime`` on ``device`` (``cpu``, ``cuda``, ``cuda:N``) in ``precision``,
    and a human ``reason`` for each choice that was not given explicitly."""

    model: str
    runtime: str
    device: str
    precision: Precision
    reason: str
    skipped: tuple[str, ...] = field(default=(), compare=False)

    @property
    def why(self) -> str:
        """Alias of :attr:`reason`."""
        return self.reason

    def summary(self) -> str:
        """``onnxruntime-cpu fp32 (fastest available ...)``: one line for logs and ``doctor``."""
        return f"{self.runtime}-{self.device} {self.precision} ({self.reason})"

    def describe(self) -> str:
        """``onnxruntime on cpu, fp32 (fastest available ...)``."""
        return f"{self.runtime} on {self.device}, {self.precision} ({self.reason})"


def _or(items: Sequence[str]) -> str:
    return " or ".join(items)


class _Infos(dict[tuple[str, str], RuntimeInfo]):
    """Probed runtimes; a pair nobody probed is unavailable."""

    def __missing__(self, pair: tuple[str, str]) -> RuntimeInfo:
        return RuntimeInfo(pair[0], pair[1], False, "not probed")


def _infos() -> dict[tuple[str, str], RuntimeInfo]:
    return _Infos({(i.runtime, i.device): i for i in runtime_infos()})


def _available_list(infos: Mapping[tuple[str, str], RuntimeInfo]) -> str:
    return ", ".join(i.key for i in infos.values() if i.available) or "none"


def _key(runtime: str, device: str) -> str:
    return RuntimeInfo(runtime, device, True, "").key


def plan_engine(
    model_kind: str,
    *,
    runtime: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    artefact: str | Path | Artefact | None = None,
    shipped_weights: bool = True,
) -> EnginePlan:
    """Decide runtime, device and precision for ``model_kind`` (a key of :data:`MODELS`).

    ``runtime``, ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and ``precision`` are what the
    user configured; ``artefact`` the exported file to run, if any (a path or an :class:`Artefact`);
    ``shipped_weights``: the model runs the weights framesift ships for it (see ``shipped_int8``).
    Raises ConfigError (one line: the option and the fix) when the request cannot be met here.
    """
    rules = MODELS.get(model_kind)
    if rules is None:
        raise ValueError(f"unknown model kind {model_kind!r} (one of {', '.join(MODELS)})")
    label = rules.label
    if runtime not in ("auto", *rules.runtimes):
        raise ConfigError(
            f"{label}: unknown runtime {runtime!r} (choose one of: auto, {', '.join(rules.runtimes)})"
        )
    if not DEVICE_RE.match(device):
        raise ConfigError(f"{label}: unknown device {device!r} (choose auto, cpu, cuda or cuda:N)")
    if precision not in ("auto", *PRECISIONS):
        raise ConfigError(
            f"{label}: unknown precision {precision!r} (choose one of: auto, {', '.join(PRECISIONS)})"
        )
    kind = device.split(":", 1)[0]
    art = artefact if isinstance(artefact, Artefact) or artefact is None else Artefact.of(artefact)
    fixed = _check_artefact(rules, art, runtime, kind, precision)
    want_precision: Precision | None = None if precision == "auto" else precision  # type: ignore[assignment]
    if want_precision is None and art is not None and art.precision is not None:
        want_precision = art.precision
    want_kind = kind if kind != "auto" else (art.device if art is not None and art.device else None)

    bf16 = cpu_bf16_kind() if rules.cpu_bf16 and want_precision in (None, "bf16") else None
    capped = bf16_cap(bf16)  # the CPU has bf16 but ONEDNN_MAX_CPU_ISA & co. take it away
    if capped:
        bf16 = None
    order = list(rules.order)
    bf16_on = rules.bf16_runtimes.get(bf16, ("torch",)) if bf16 else ()
    if want_precision in (None, "bf16"):  # native bf16: its runtimes go ahead of the other CPU ones
        _cpu_first(order, bf16_on)
    no_vnni_int8 = want_precision == "int8" and bool(rules.int8_without_vnni) and not _vnni(int8_kernels())
    if no_vnni_int8:
        _cpu_first(order, rules.int8_without_vnni)

    def fits(r: str, d: str) -> bool:
        return runtime in ("auto", r) and (fixed is None or r in fixed) and want_kind in (None, d)

    pairs = [(r, d) for r, d in order if fits(r, d)]  # what may run it, whatever the precision
    candidates = [p for p in pairs if want_precision is None or want_precision in rules.precisions[p]]
    if not candidates:
        raise _refusal(rules, runtime, device, want_kind, want_precision, pairs)
    infos = _infos()
    chosen = next((c for c in candidates if infos[c].available), None)
    if chosen is None:
        reasons = "; ".join(f"{infos[c].key}: {infos[c].detail}" for c in candidates)
        usable = [p for p in pairs if infos[p].available]
        if want_precision is not None and usable:  # the precision is what cannot be met here
            ok = sorted({p for u in usable for p in rules.precisions[u]})
            raise ConfigError(
                f"{label}: precision {want_precision} needs {_or([infos[c].key for c in candidates])}, "
                f"which is not available here ({reasons}): set precision: {_or(ok)} (or auto)"
            )
        raise ConfigError(
            f"{label}: runtime {runtime!r} on device {device!r} is not available here ({reasons}); "
            f"set runtime/device to one that is available: {_available_list(infos)}"
        )
    r, d = chosen
    skipped = tuple(infos[c].key for c in candidates[: candidates.index(chosen)])
    allowed = rules.precisions[chosen]
    native_bf16 = bool(r in bf16_on and d == "cpu" and "bf16" in allowed)
    default: Precision = "bf16" if native_bf16 else allowed[0]
    auto_int8 = runtime == "auto" and shipped_weights and want_precision is None and art is None
    vnni = _shipped_int8(rules, infos, d, bf16) if auto_int8 else None
    if vnni:
        r, default = "openvino", "int8"
    chosen_precision = want_precision or default
    if capped and chosen_precision == "bf16" and d == "cpu":
        raise ConfigError(
            f"{label}: precision bf16 on the CPU needs native bf16, but {capped}: "
            "unset that variable, or set precision: fp32 (or auto)"
        )
    unavailable = f" ({', '.join(skipped)} unavailable)" if skipped else ""
    why: list[str] = []
    if runtime != "auto":
        why.append("requested" + unavailable)
    elif vnni:
        why.append(
            f"{'no AMX' if bf16 else 'no native bf16'}, INT8 kernels with {vnni}: {label}'s shipped "
            "weights run INT8 (quality measured); set precision: fp32 for the reference's exact probabilities"
        )
    elif native_bf16 and want_precision is None:
        why.append(f"this CPU has native bf16 ({bf16}): {r} runs bf16; set precision: fp32 for fp32")
    else:
        what = f" for the {ARTEFACT_NAMES[art.kind]} file" if art is not None else ""
        why.append(f"fastest available{what}{unavailable}")
        passed = [infos[p].key for p in pairs[: pairs.index(chosen)] if p not in candidates]
        if passed:
            why.append(f"{want_precision} runs on {_key(r, d)}, not on {', '.join(passed)}")
    if capped and want_precision is None and d == "cpu":
        why.append(f"no bf16: {capped}")
    if chosen_precision == "int8" and d == "cpu" and want_precision is not None and r == "torch":
        note = "; OpenVINO's INT8 gains little on a transformer without VNNI" if no_vnni_int8 else ""
        why.append(f"int8 kernels: FBGEMM {fbgemm_kernels()} (Linear layers quantised dynamically{note})")
    elif chosen_precision == "int8" and d == "cpu" and want_precision is not None:
        why.append(f"int8 kernels: {int8_kernels()}")  # auto's own INT8 names them above
    if precision == "auto" and not (runtime == "auto" and (native_bf16 or vnni)):
        if art is not None and art.precision is not None:
            why.append(f"{chosen_precision}: the precision of {art.name}")
        elif native_bf16:
            why.append(f"bf16: this CPU has native bf16 ({bf16}); set precision: fp32 for fp32")
        elif chosen_precision == "fp16":
            why.append("fp16 on CUDA")
        else:
            why.append(f"{chosen_precision}: {label}'s default on {_key(r, d)}")
    dev = device if kind == d and device != "auto" else d
    return EnginePlan(model_kind, r, dev, chosen_precision, "; ".join(why), skipped)


def _check_artefact(
    rules: ModelRules, art: Artefact | None, runtime: str, kind: str, precision: str
) -> tuple[str, ...] | None:
    """The runtimes ``art`` allows (None: any); ConfigError where the request contradicts the file."""
    if art is None:
        return None
    fixed = tuple(r for r in ARTEFACT_RUNTIMES[art.kind] if r in rules.runtimes)
    label, what = rules.label, ARTEFACT_NAMES[art.kind]
    if not fixed:
        raise ConfigError(f"{label}: a {what} file ({art.name}) cannot run this model; {rules.artefact_hint}")
    if runtime != "auto" and runtime not in fixed:
        raise ConfigError(
            f"{label}: runtime {runtime} cannot run the {what} file {art.name}: it runs on runtime "
            f"{_or(fixed)}, not {runtime}; set runtime: {fixed[0]} (or auto), {rules.artefact_hint}"
        )
    if art.precision is not None and precision not in ("auto", art.precision):
        raise ConfigError(
            f"{label}: {art.name} was exported in {art.precision}, not {precision}: set precision: "
            f"{art.precision} (or auto), {rules.artefact_hint.replace('exports it', 'exports it again')}"
        )
    if art.device is not None and kind not in ("auto", art.device):
        raise ConfigError(
            f"{label}: {art.name} was exported for {art.device}, not {kind}: set device: {art.device} "
            f"(or auto), {rules.artefact_hint.replace('exports it', 'exports it again')}"
        )
    return fixed


def _shipped_int8(
    rules: ModelRules, infos: Mapping[tuple[str, str], RuntimeInfo], device: str, bf16: str | None
) -> str | None:
    """The VNNI kernels that run ``rules``' shipped weights in INT8 under auto on this CPU (no AMX,
    OpenVINO and NNCF installed), or None."""
    if not rules.shipped_int8 or device != "cpu" or bf16 == "AMX":
        return None
    if (
        "int8" not in rules.precisions.get(("openvino", "cpu"), ())
        or not infos[("openvino", "cpu")].available
    ):
        return None
    kernels = int8_kernels()
    return kernels if _vnni(kernels) and nncf_installed() else None


def _cpu_first(order: list[tuple[str, str]], runtimes: Sequence[str]) -> None:
    """Move ``runtimes``' CPU pairs, in that order, ahead of the other CPU pairs of ``order``."""
    first_cpu = next((i for i, (_, d) in enumerate(order) if d == "cpu"), len(order))
    for r in reversed(runtimes):
        if (r, "cpu") in order:
            order.remove((r, "cpu"))
            order.insert(first_cpu, (r, "cpu"))


def _vnni(kernels: str) -> bool:
    """:func:`int8_kernels` names VNNI kernels."""
    return kernels.startswith(("AVX512-VNNI", "AVX-VNNI"))


def _refusal(
    rules: ModelRules,
    runtime: str,
    device: str,
    want_kind: str | None,
    precision: Precision | None,
    pairs: list[tuple[str, str]],
) -> ConfigError:
    """Why no (runtime, device) pair can run the request (``pairs``: those that fit it but for the
    precision), as one ConfigError line."""
    label = rules.label
    if not pairs:  # the runtime does not run on that device at all
        runs_on = sorted({d for r, d in rules.order if runtime in ("auto", r)})
        return ConfigError(
            f"{label}: runtime {runtime} does not run on device {device}: set device: "
            f"{_or(runs_on)} (or auto), or runtime: auto"
        )
    assert precision is not None
    ok = sorted({p for pair in pairs for p in rules.precisions[pair]})
    used = sorted({r for r, _ in pairs})
    rt = runtime if runtime != "auto" else _or(used)
    devices = sorted({d for (r, d), ps in rules.precisions.items() if precision in ps and r in used})
    if devices and want_kind not in devices:
        return ConfigError(
            f"{label}: precision {precision} with {rt} needs a {DEVICE_NAMES[devices[0]]} device: "
            f"set precision: {_or(ok)} (or auto), or device: {devices[0]}"
        )
    runtimes = sorted(
        {r for (r, d), ps in rules.precisions.items() if precision in ps and want_kind in (None, d)}
    )
    alt = f", or runtime: {_or(runtimes)}" if runtimes and runtime != "auto" else ""
    return ConfigError(
        f"{label}: precision {precision} is not supported by {rt}: set precision: {_or(ok)} (or auto){alt}"
    )


def plan_all(device: str = "auto") -> dict[str, EnginePlan | ConfigError]:
    """The auto plan of every model (``framesift doctor``): the plan, or why there is none."""
    out: dict[str, EnginePlan | ConfigError] = {}
    for kind in MODELS:
        try:
            out[kind] = plan_engine(kind, device=device)
        except ConfigError as exc:
            out[kind] = exc
    return out
