"""Decoder selection: every GPU path is chosen only when it can run, with the reason said."""

from __future__ import annotations

import pytest

from framesift.errors import SourceError
from framesift.gpu import GPU_CODECS, GpuInfo, probe_gpu, select_decoder

NO_GPU = GpuInfo(cuda=False, reason="torch.cuda.is_available() is False (no NVIDIA GPU or driver)")
H100_NV = GpuInfo(
    cuda=True, device_name="NVIDIA H100", compute_capability=(9, 0), nvcodec=True, pyav_cuda=True
)
H100_PYAV = GpuInfo(
    cuda=True, device_name="NVIDIA H100", pyav_cuda=True, nvcodec_reason="PyNvVideoCodec is not installed"
)
H100_NVONLY = GpuInfo(
    cuda=True,
    device_name="NVIDIA H100",
    nvcodec=True,
    pyav_cuda_reason="PyAV's FFmpeg was built without CUDA hwaccel",
)
H100_NONE = GpuInfo(
    cuda=True,
    device_name="NVIDIA H100",
    nvcodec_reason="PyNvVideoCodec is not installed",
    pyav_cuda_reason="PyAV's FFmpeg was built without CUDA hwaccel",
)


def test_auto_without_gpu_picks_cpu_and_says_why() -> None:
    choice = select_decoder("auto", source_type="file", gpu=NO_GPU)
    assert choice.name == "pyav"
    assert "no NVIDIA GPU" in choice.reason


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [(H100_NV, "pyav-cuda"), (H100_PYAV, "pyav-cuda"), (H100_NVONLY, "nvcodec"), (H100_NONE, "pyav")],
)
@pytest.mark.parametrize("source_type", ["file", "rtsp", "http"])
def test_auto_with_gpu_prefers_nvdec(gpu: GpuInfo, expected: str, source_type: str) -> None:
    """NVDEC through PyAV first (it keeps PyAV's timeouts and options), PyNvVideoCodec next."""
    choice = select_decoder("auto", source_type=source_type, codec="h264", gpu=gpu)
    assert choice.name == expected
    assert choice.reason
    if expected == "pyav":
        assert "PyNvVideoCodec is not installed" in choice.reason
        assert "built without CUDA hwaccel" in choice.reason
    elif expected == "nvcodec":
        assert "built without CUDA hwaccel" in choice.reason  # why not the preferred path
    else:
        assert "NVIDIA H100" in choice.reason


def test_auto_keeps_cpu_for_devices_images_and_unsupported_codecs() -> None:
    assert select_decoder("auto", source_type="device", gpu=H100_NV).name == "pyav"
    assert select_decoder("auto", source_type="images", gpu=H100_NV).name == "pyav"
    choice = select_decoder("auto", source_type="file", codec="prores", gpu=H100_NV)
    assert choice.name == "pyav" and "prores" in choice.reason


@pytest.mark.parametrize("name", ["pyav", "opencv"])
def test_explicit_cpu_decoders_always_allowed(name: str) -> None:
    assert select_decoder(name, source_type="file", gpu=NO_GPU).name == name


@pytest.mark.parametrize("name", ["nvcodec", "pyav-cuda"])
def test_explicit_gpu_decoder_without_gpu_is_a_clear_error(name: str) -> None:
    with pytest.raises(
        SourceError, match=rf"decoder '{name}' is not available on this machine: .*decoder: auto"
    ):
        select_decoder(name, source_type="file", gpu=NO_GPU)


def test_unknown_decoder() -> None:
    with pytest.raises(SourceError, match="unknown decoder"):
        select_decoder("quicksync", source_type="file", gpu=NO_GPU)


def test_probe_on_this_machine_is_consistent() -> None:
    info = probe_gpu()
    if not info.cuda:
        assert info.reason and not info.pyav_cuda and not info.nvcodec
        assert select_decoder("auto", source_type="file").name == "pyav"
    else:  # pragma: no cover - GPU machines
        assert info.device_name


def test_auto_with_unknown_codec_tries_nvdec() -> None:
    """The codec is not always known cheaply (live streams): NVDEC is tried, FFmpeg falls back."""
    assert select_decoder("auto", source_type="rtsp", codec=None, gpu=H100_PYAV).name == "pyav-cuda"


@pytest.mark.parametrize("codec", sorted(GPU_CODECS))
def test_auto_with_every_nvdec_codec(codec: str) -> None:
    assert select_decoder("auto", source_type="file", codec=codec, gpu=H100_PYAV).name == "pyav-cuda"


@pytest.mark.parametrize(("name", "gpu"), [("nvcodec", H100_PYAV), ("pyav-cuda", H100_NVONLY)])
def test_explicit_gpu_decoder_missing_on_a_gpu_machine_names_what_is_missing(name: str, gpu: GpuInfo) -> None:
    with pytest.raises(SourceError) as err:
        select_decoder(name, source_type="file", gpu=gpu)
    why = gpu.nvcodec_reason if name == "nvcodec" else gpu.pyav_cuda_reason
    assert why in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "gpu"), [("nvcodec", H100_NV), ("pyav-cuda", H100_PYAV)])
def test_explicit_gpu_decoder_available(name: str, gpu: GpuInfo) -> None:
    choice = select_decoder(name, source_type="rtsp", codec="h264", gpu=gpu)
    assert choice.name == name and "requested" in choice.reason


def test_explicit_gpu_decoder_without_gpu_says_both_reasons() -> None:
    no_gpu_no_nvc = GpuInfo(
        cuda=False, reason="no NVIDIA driver", nvcodec_reason="PyNvVideoCodec is not installed"
    )
    with pytest.raises(SourceError) as err:
        select_decoder("nvcodec", source_type="file", gpu=no_gpu_no_nvc)
    assert "no NVIDIA driver; PyNvVideoCodec is not installed" in str(err.value)


def test_probe_without_driver_does_not_import_torch() -> None:
    """On a machine without an NVIDIA driver, probing must not pay for importing torch."""
    import subprocess
    import sys

    code = (
        "import os, sys\n"
        "from framesift.gpu import NVIDIA_NODES, probe_gpu\n"
        "info = probe_gpu()\n"
        "print(any(os.path.exists(p) for p in NVIDIA_NODES), 'torch' in sys.modules, info.cuda)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    has_node, torch_imported, cuda = out.stdout.split()
    if has_node == "False":
        assert (torch_imported, cuda) == ("False", "False")
