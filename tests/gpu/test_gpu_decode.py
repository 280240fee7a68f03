"""GPU decoders: CPU-side behaviour here; ``@pytest.mark.gpu`` tests (skipped without CUDA) prove
GPU-decoded frames equal CPU-decoded frames and that nothing is copied to the host on the hot path."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from framesift.errors import SourceError
from framesift.gpu import probe_gpu
from framesift.samples import ClipInfo, read_barcode
from framesift.stream.nvcodec_source import NvCodecSource
from framesift.stream.pyav_cuda_source import PyAVCudaSource
from framesift.stream.pyav_source import PyAVSource
from framesift.stream.sources.file import FileSourceConfig
from tests.stream.helpers import read_source

MAX_MEAN_DIFF = 2.0  # NVDEC and FFmpeg's decoder are bit-exact for H.264; the colour maths differs a little
MAX_DIFF = 8


def _host(image: Any) -> np.ndarray:
    return image.cpu().numpy() if hasattr(image, "cpu") else np.asarray(image)


@pytest.fixture
def clip(make_clip: Callable[..., ClipInfo]) -> ClipInfo:
    return make_clip("g.mp4", segments=(10, 10), width=320, height=240)


@pytest.mark.skipif(probe_gpu().cuda, reason="checks the CPU-only failure")
@pytest.mark.parametrize("gpu_frames", [False, True])
def test_pyav_cuda_without_a_device_fails_on_open_with_one_line(clip: ClipInfo, gpu_frames: bool) -> None:
    src = PyAVCudaSource(FileSourceConfig(path=str(clip.path)), "g", gpu_frames=gpu_frames)
    with pytest.raises(SourceError) as err:
        src.open()
    src.close()
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(
        f"{clip.path}: decoder 'pyav-cuda' could not open CUDA device 0"
    )
    assert "use decoder: auto or pyav" in msg


@pytest.mark.skipif(importlib.util.find_spec("PyNvVideoCodec") is not None, reason="PyNvVideoCodec installed")
def test_nvcodec_without_the_package_fails_on_open(clip: ClipInfo) -> None:
    src = NvCodecSource(FileSourceConfig(path=str(clip.path)), "g")
    with pytest.raises(SourceError, match=r"needs PyNvVideoCodec .*pip install PyNvVideoCodec"):
        src.open()
    src.close()
    assert list(src.frames()) == []  # closed before reading: ends quietly


def test_nvcodec_refuses_what_it_cannot_do(clip: ClipInfo) -> None:
    with pytest.raises(SourceError, match="does not support keyframes_only, start/end windows"):
        NvCodecSource(FileSourceConfig(path=str(clip.path), keyframes_only=True, end=1.0), "g")


def test_cpu_frames_say_nothing_about_devices(clip: ClipInfo) -> None:
    frames = read_source(PyAVSource(FileSourceConfig(path=str(clip.path)), "g"), 2)
    assert [f.meta for f in frames] == [{}, {}]


# -- on a GPU -----------------------------------------------------------------------------------


def _gpu_source(kind: str, cfg: FileSourceConfig, gpu_frames: bool) -> Any:
    if kind == "nvcodec":
        if not probe_gpu().nvcodec:
            pytest.skip(probe_gpu().nvcodec_reason)
        return NvCodecSource(cfg, "g", gpu_frames=gpu_frames)
    if not probe_gpu().pyav_cuda:
        pytest.skip(probe_gpu().pyav_cuda_reason)
    return PyAVCudaSource(cfg, "g", gpu_frames=gpu_frames)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["pyav-cuda", "nvcodec"])
@pytest.mark.parametrize("gpu_frames", [True, False])
@pytest.mark.parametrize("size", [None, (160, 120)])
def test_gpu_decoded_frames_equal_cpu_decoded_frames(
    clip: ClipInfo, kind: str, gpu_frames: bool, size: tuple[int, int] | None
) -> None:
    w, h = size or (None, None)
    cfg = FileSourceConfig(path=str(clip.path), width=w, height=h)
    cpu = read_source(PyAVSource(cfg, "g"))
    gpu = read_source(_gpu_source(kind, cfg, gpu_frames))
    assert len(gpu) == len(cpu) == 20
    for a, b in zip(cpu, gpu, strict=True):
        assert b.meta["decoded_on"] == "nvdec"
        assert b.meta["device"] == ("cuda" if gpu_frames else "cpu")
        if gpu_frames:
            assert b.image.is_cuda and str(b.image.dtype) == "torch.uint8"
        assert a.index == b.index and a.time - cpu[0].time == b.time - gpu[0].time
        img = _host(b.image)
        assert img.shape == a.image.shape and img.dtype == np.uint8
        d = np.abs(img.astype(np.int16) - a.image.astype(np.int16))
        if size is None:
            assert d.mean() <= MAX_MEAN_DIFF and d.max() <= MAX_DIFF
            assert read_barcode(img) == read_barcode(a.image) == a.index
        else:  # resize filters differ (torch bilinear + antialias vs swscale bicubic)
            assert d.mean() <= 2 * MAX_MEAN_DIFF


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["pyav-cuda", "nvcodec"])
def test_no_host_copy_on_the_hot_path(clip: ClipInfo, kind: str) -> None:
    """Decode → DLPack → RGB + resize on the GPU: the profiler sees no host↔device memcpy."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    src = _gpu_source(kind, FileSourceConfig(path=str(clip.path), width=224, height=224), True)
    src.open()
    try:
        it = src.frames()
        next(it)  # warm-up: device set-up may upload tables once
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            n = sum(1 for _ in it)
            torch.cuda.synchronize()
    finally:
        src.close()
    assert n == 19
    events = list(prof.events())
    copies = [e.name for e in events if "Memcpy" in e.name and ("HtoD" in e.name or "DtoH" in e.name)]
    assert not copies, copies  # device-to-device copies (NVDEC surface → pool) are fine
    assert any(str(e.device_type).endswith("CUDA") for e in events)  # the profiler saw the GPU work
