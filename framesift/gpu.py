"""What GPU acceleration this machine offers, and which decoder/runtime to use — with the reason.

Every GPU path is chosen only when it can really run here; otherwise the CPU path is selected and
the reason is logged once (``decoder: auto`` never fails for lack of a GPU). Asking explicitly for a
GPU path that is unavailable is a clear error naming what is missing.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass

from framesift.errors import SourceError

log = logging.getLogger("framesift.gpu")

CPU_DECODERS = ("pyav", "opencv")
GPU_DECODERS = ("nvcodec", "pyav-cuda")
GPU_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4", "mpeg2video", "mjpeg", "vp8"})
#: Device nodes of an NVIDIA driver (Linux, containers with the NVIDIA toolkit, WSL2).
NVIDIA_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")


@dataclass(frozen=True)
class GpuInfo:
    """A snapshot of GPU capabilities; ``reason`` explains why CUDA is unusable when it is."""

    cuda: bool
    device_name: str | None = None
    compute_capability: tuple[int, int] | None = None
    reason: str = ""
    pyav_cuda: bool = False  # PyAV's FFmpeg can open a CUDA hwaccel device
    pyav_cuda_reason: str = ""
    nvcodec: bool = False  # NVIDIA's PyNvVideoCodec is importable
    nvcodec_reason: str = ""


@dataclass(frozen=True)
class DecoderChoice:
    name: str
    reason: str


#: The PyAV release that has everything ``pyav-cuda`` uses: ``HWAccel`` (14.1), ``is_hw_owned=`` (17.0)
#: and ``VideoFrame.sw_format`` with DLPack export of CUDA planes (18.0).
PYAV_CUDA_MIN = (18, 0)


def pyav_cuda_version_gap(version: str) -> str | None:
    """Why PyAV ``version`` cannot run ``pyav-cuda`` (None when it can)."""
    parts: list[int] = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    if tuple(parts) >= PYAV_CUDA_MIN:
        return None
    return (
        f"PyAV {version} is too old for NVDEC decoding (HWAccel with is_hw_owned and "
        f"VideoFrame.sw_format need PyAV >= {PYAV_CUDA_MIN[0]}); pip install 'av>={PYAV_CUDA_MIN[0]}'"
    )


def _pyav_cuda(cuda: bool) -> tuple[bool, str]:
    if not cuda:
        return False, "no CUDA device"
    import av

    gap = pyav_cuda_version_gap(str(av.__version__))
    if gap is not None:
        return False, gap
    try:
        from av.codec.hwaccel import HWAccel, hwdevices_available
    except ImportError:  # pragma: no cover - PyAV < 14.1
        return False, "this PyAV has no hwaccel support (PyAV >= 18 needed)"
    if "cuda" not in hwdevices_available():
        return False, "PyAV's FFmpeg was built without CUDA hwaccel"
    try:
        # Constructing HWAccel only records settings; create() opens the CUDA device for real.
        HWAccel(device_type="cuda", allow_software_fallback=False, options={"primary_ctx": "1"}).create(
            av.codec.Codec("h264", "r")
        )
    except Exception as exc:  # FFmpeg raises various errors when the driver is missing
        return False, f"PyAV could not create a CUDA device ({type(exc).__name__}: {exc})"
    return True, "PyAV CUDA hwaccel available"


@functools.lru_cache(maxsize=1)
def probe_gpu() -> GpuInfo:
    """Detect CUDA (through torch), PyAV's CUDA hwaccel and PyNvVideoCodec. Cached; never raises."""
    cuda, reason = False, ""
    name: str | None = None
    cc: tuple[int, int] | None = None
    if "torch" not in sys.modules and not any(os.path.exists(p) for p in NVIDIA_NODES):
        # Importing torch costs seconds; without a driver device node CUDA cannot work anyway.
        reason = f"no NVIDIA driver device ({NVIDIA_NODES[0]} missing; torch.cuda not consulted)"
    elif importlib.util.find_spec("torch") is None:
        reason = "torch is not installed"
    else:
        try:
            import torch

            if torch.cuda.is_available():
                cuda = True
                name = torch.cuda.get_device_name(0)
                major, minor = torch.cuda.get_device_capability(0)
                cc = (int(major), int(minor))
            else:
                reason = "torch.cuda.is_available() is False (no NVIDIA GPU or driver)"
        except Exception as exc:  # pragma: no cover - broken CUDA installs
            reason = f"torch could not query CUDA ({exc})"
    pyav_ok, pyav_reason = _pyav_cuda(cuda)
    if importlib.util.find_spec("PyNvVideoCodec") is None:
        nv_ok, nv_reason = False, "PyNvVideoCodec is not installed (pip install PyNvVideoCodec)"
    elif not cuda:
        nv_ok, nv_reason = False, "no CUDA device"
    else:
        nv_ok, nv_reason = True, "PyNvVideoCodec available"
    return GpuInfo(cuda, name, cc, reason, pyav_ok, pyav_reason, nv_ok, nv_reason)


def select_decoder(
    requested: str, *, source_type: str, codec: str | None = None, gpu: GpuInfo | None = None
) -> DecoderChoice:
    """Pick the decoder for a source.

    ``auto`` prefers NVDEC for files/RTSP/HTTP whose codec NVDEC handles — PyAV's CUDA hwaccel first
    (same NVDEC, plus PyAV's timeouts, reconnects and every source option), then PyNvVideoCodec —
    else PyAV on the CPU. An explicit GPU decoder that cannot run raises SourceError.
    """
    gpu = gpu or probe_gpu()
    if requested in CPU_DECODERS:
        return DecoderChoice(requested, f"{requested} requested in the config")
    if requested in GPU_DECODERS:
        ok, why = (
            (gpu.nvcodec, gpu.nvcodec_reason)
            if requested == "nvcodec"
            else (gpu.pyav_cuda, gpu.pyav_cuda_reason)
        )
        if not ok:
            if not gpu.cuda:  # say both: the missing GPU and what else is missing
                extra = why if why and why != "no CUDA device" else ""
                why = "; ".join(x for x in (gpu.reason or "no CUDA device", extra) if x)
            raise SourceError(
                f"decoder {requested!r} is not available on this machine: {why}; "
                "use decoder: auto (falls back to CPU decoding) or decoder: pyav"
            )
        return DecoderChoice(requested, f"{requested} requested in the config")
    if requested != "auto":
        raise SourceError(f"unknown decoder {requested!r} (use auto, pyav, opencv, pyav-cuda or nvcodec)")
    if source_type in ("device", "images"):
        return DecoderChoice("pyav", f"CPU decode: {source_type} sources are not decoded by NVDEC")
    if not gpu.cuda:
        return DecoderChoice("pyav", f"CPU decode: {gpu.reason or 'no CUDA device'}")
    if codec is not None and codec not in GPU_CODECS:
        return DecoderChoice("pyav", f"CPU decode: NVDEC does not decode {codec}")
    if gpu.pyav_cuda:
        return DecoderChoice("pyav-cuda", f"NVDEC through PyAV's CUDA hwaccel on {gpu.device_name}")
    if gpu.nvcodec:
        return DecoderChoice(
            "nvcodec", f"NVDEC through PyNvVideoCodec on {gpu.device_name} ({gpu.pyav_cuda_reason})"
        )
    return DecoderChoice(
        "pyav", f"CPU decode: CUDA present but no NVDEC path ({gpu.nvcodec_reason}; {gpu.pyav_cuda_reason})"
    )
