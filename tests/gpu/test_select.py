"""Decoder selection: every GPU path is chosen only when it can run, with the reason said."""

from __future__ import annotations

import pytest

from framesift.errors import SourceError
from framesift.gpu import GpuInfo, probe_gpu, select_decoder

NO_GPU = GpuInfo(cuda=False, reason="torch.cuda.is_available() is False (no NVIDIA GPU or driver)")
H100_NV = GpuInfo(
    cuda=True, device_name="NVIDIA H100", compute_capability=(9, 0), nvcodec=True, pyav_cuda=True
)
H100_PYAV = GpuInfo(
    cuda=True, device_name="NVIDIA H100", pyav_cuda=True, nvcodec_reason="PyNvVideoCodec is not installed"
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
    ("gpu", "expected"), [(H100_NV, "nvcodec"), (H100_PYAV, "pyav-cuda"), (H100_NONE, "pyav")]
)
def test_auto_with_gpu_prefers_nvdec(gpu: GpuInfo, expected: str) -> None:
    choice = select_decoder("auto", source_type="rtsp", codec="h264", gpu=gpu)
    assert choice.name == expected
    if expected == "pyav":
        assert "PyNvVideoCodec is not installed" in choice.reason


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
