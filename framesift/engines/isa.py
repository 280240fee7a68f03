"""Instruction-set caps: what the CPU libraries may use, as the environment limits them.

A CPU's flags say what it has; these variables say what oneDNN, ATen, MKL and OpenVINO may use of it.
Users set them (and benches set them to reproduce an AVX2-only CPU on a larger one):

* ``ONEDNN_MAX_CPU_ISA`` (oneDNN, hence PyTorch's mkldnn ops and OpenVINO's CPU plugin): ``AVX2``,
  ``AVX2_VNNI``, ``AVX512_CORE``, ``AVX512_CORE_BF16``, ``AVX512_CORE_AMX``, ``ALL``...;
* ``ATEN_CPU_CAPABILITY`` (PyTorch's own kernels): ``default``, ``avx2``, ``avx512``;
* ``MKL_ENABLE_INSTRUCTIONS`` (MKL): ``SSE4_2``, ``AVX``, ``AVX2``, ``AVX512``, ``AVX512_E1``...;
* ``OV_CPU_MAX_ISA`` (OpenVINO; honoured by its debug builds);
* ``FBGEMM_ENABLE_INSTRUCTIONS`` (FBGEMM, PyTorch's INT8 CPU kernels): ``AVX2``, ``AVX512``,
  ``AVX512_E1`` (with VNNI)...; :func:`fbgemm_cap` derives it from the others where it is unset.

:func:`bf16_cap` tells whether any of them takes native bf16 away (oneDNN then refuses bf16
convolutions: "bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq"),
and :func:`isa_descriptor` is the part of an engine cache key that the caps decide.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = [
    "CAP_VARS",
    "active_caps",
    "bf16_cap",
    "cpu_bf16_kind",
    "cpu_flags",
    "fbgemm_cap",
    "fbgemm_kernels",
    "int8_kernels",
    "isa_descriptor",
]

CAP_VARS = (
    "ONEDNN_MAX_CPU_ISA",
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
    "OV_CPU_MAX_ISA",
    "FBGEMM_ENABLE_INSTRUCTIONS",
)

# oneDNN ISA names, lowest first (aliases and the AVX10 names map to their AVX-512 rank)
_ONEDNN_RANK = {
    "SSE41": 1,
    "AVX": 2,
    "AVX2": 3,
    "AVX2_VNNI": 4,
    "AVX2_VNNI_2": 5,
    "AVX512_CORE": 6,
    "AVX512_CORE_VNNI": 7,
    "AVX512_CORE_BF16": 8,
    "AVX512_CORE_FP16": 9,
    "AVX10_1_512": 9,
    "AVX512_CORE_AMX": 10,
    "AVX10_1_512_AMX": 10,
    "AVX512_CORE_AMX_FP16": 11,
    "AVX10_1_512_AMX_FP16": 11,
}
_BF16_RANK = _ONEDNN_RANK["AVX512_CORE_BF16"]  # what AMX / AVX512-BF16 CPUs run bf16 with
_NO_CAP = ("", "ALL", "DEFAULT")
# ATen and MKL caps below AVX-512: bf16 arithmetic there is emulated, several times slower
_ATEN_BELOW_AVX512 = ("DEFAULT", "AVX", "AVX2")
_MKL_BELOW_AVX512 = ("SSE4_2", "AVX", "AVX2")


def active_caps(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The cap variables set in ``env`` (default: this process's environment), upper-cased."""
    env = os.environ if env is None else env
    return {v: env[v].strip().upper() for v in CAP_VARS if env.get(v, "").strip()}


def bf16_cap(hardware: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Why native bf16 may not be used although the CPU has it (``hardware``: ``"AMX"`` or
    ``"AVX512-BF16"``), as a phrase naming the variable; None when no cap takes it away."""
    if hardware is None:
        return None
    caps = active_caps(env)
    onednn = caps.get("ONEDNN_MAX_CPU_ISA", "")
    if onednn not in _NO_CAP:
        rank = _ONEDNN_RANK.get(onednn)
        if rank is None:
            return f"ONEDNN_MAX_CPU_ISA={onednn} is not an ISA oneDNN knows (it then refuses bf16)"
        if rank < _BF16_RANK:
            return f"ONEDNN_MAX_CPU_ISA={onednn} caps oneDNN below its bf16 kernels (AVX512_CORE_BF16)"
    aten = caps.get("ATEN_CPU_CAPABILITY", "")
    if aten in _ATEN_BELOW_AVX512:
        return f"ATEN_CPU_CAPABILITY={aten.lower()} caps PyTorch's kernels below AVX-512 (bf16 emulated)"
    mkl = caps.get("MKL_ENABLE_INSTRUCTIONS", "")
    if mkl in _MKL_BELOW_AVX512:
        return f"MKL_ENABLE_INSTRUCTIONS={mkl} caps MKL below AVX-512"
    ov = caps.get("OV_CPU_MAX_ISA", "")
    if ov not in _NO_CAP and _ONEDNN_RANK.get(ov, 0) < _BF16_RANK:
        return f"OV_CPU_MAX_ISA={ov} caps OpenVINO below its bf16 kernels"
    return None


def fbgemm_cap(env: Mapping[str, str] | None = None) -> str | None:
    """The ``FBGEMM_ENABLE_INSTRUCTIONS`` value the other caps imply: ``AVX2`` where oneDNN, ATen or
    MKL are capped below AVX-512 (FBGEMM itself reads only its own variable and would run AVX-512
    kernels), else None; a value the user set wins."""
    caps = active_caps(env)
    if "FBGEMM_ENABLE_INSTRUCTIONS" in caps:
        return caps["FBGEMM_ENABLE_INSTRUCTIONS"]
    onednn = caps.get("ONEDNN_MAX_CPU_ISA", "")
    below = onednn not in _NO_CAP and _ONEDNN_RANK.get(onednn, 0) < _ONEDNN_RANK["AVX512_CORE"]
    below = below or caps.get("ATEN_CPU_CAPABILITY", "") in _ATEN_BELOW_AVX512
    below = below or caps.get("MKL_ENABLE_INSTRUCTIONS", "") in _MKL_BELOW_AVX512
    return "AVX2" if below else None


def fbgemm_kernels(env: Mapping[str, str] | None = None, flags: set[str] | None = None) -> str:
    """Which INT8 kernels FBGEMM (torch's dynamic INT8) runs here: its cap, else the CPU's best."""
    flags = cpu_flags() if flags is None else flags
    return fbgemm_cap(env) or ("AVX512-VNNI" if "avx512_vnni" in flags else "AVX2")


def cpu_flags() -> set[str]:
    """The CPU's flags as Linux lists them in /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def int8_kernels(env: Mapping[str, str] | None = None, flags: set[str] | None = None) -> str:
    """Which INT8 kernels oneDNN (OpenVINO's CPU plugin) can use here, caps included: VNNI
    (AVX512-VNNI or AVX-VNNI) multiplies int8 in one instruction; plain AVX2 needs three, and
    OpenVINO's fully connected layers (CLIP's transformer) then gain little over fp32."""
    flags = cpu_flags() if flags is None else flags
    onednn = active_caps(env).get("ONEDNN_MAX_CPU_ISA", "")
    rank = 99 if onednn in _NO_CAP else _ONEDNN_RANK.get(onednn, 0)
    cap = f" (ONEDNN_MAX_CPU_ISA={onednn})" if onednn not in _NO_CAP else ""
    if "avx512_vnni" in flags and rank >= _ONEDNN_RANK["AVX512_CORE_VNNI"]:
        return "AVX512-VNNI"
    if ("avx_vnni" in flags or "avx512_vnni" in flags) and rank >= _ONEDNN_RANK["AVX2_VNNI"]:
        return "AVX-VNNI" + cap
    if "avx2" in flags and rank >= _ONEDNN_RANK["AVX2"]:
        return "AVX2 without VNNI" + cap + ": convolutions gain, transformer layers little"
    return "no AVX2" + cap + ": INT8 runs on reference kernels, likely slower than fp32"


def isa_descriptor(env: Mapping[str, str] | None = None) -> str:
    """``isa:<flags>`` of this CPU that engines compile for, with the caps that limit them:
    an engine built under a cap is not loaded without it, and the other way round."""
    have = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16")
    flags = [f for f in wanted if f in have]
    caps = active_caps(env)
    capped = ",".join(f"{k}={v}" for k, v in sorted(caps.items()))
    return f"isa:{'+'.join(flags) or 'unknown'}" + (f";caps:{capped}" if capped else "")


def cpu_bf16_kind() -> str | None:
    """``"AMX"`` or ``"AVX512-BF16"``: this CPU's native bf16 matrix instructions, from its flags in
    /proc/cpuinfo (Linux lists AMX only where the kernel enables it; no torch import, 1-2 s), else as
    torch sees them; None without them."""
    flags = cpu_flags()
    if flags:
        if {"amx_bf16", "amx_tile"} <= flags:
            return "AMX"
        return "AVX512-BF16" if "avx512_bf16" in flags else None
    try:
        import torch

        cpu = torch.cpu
        if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
            return "AMX"
        if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
            return "AVX512-BF16"
    except Exception:
        pass
    return None
