"""PyAV-CUDA decisions without a GPU: the version gate and where each frame was decoded."""

from __future__ import annotations

import pytest

from framesift.gpu import pyav_cuda_version_gap
from framesift.stream.pyav_cuda_source import GPU_SURFACES, decoded_on_nvdec


@pytest.mark.parametrize("version", ["14.1.0", "16.0.1", "17.0.0", "13.1.0"])
def test_pyav_before_18_cannot_run_pyav_cuda_and_says_so(version: str) -> None:
    gap = pyav_cuda_version_gap(version)
    assert gap is not None and f"PyAV {version} is too old" in gap and "av>=18" in gap


@pytest.mark.parametrize("version", ["18.0.0", "18.1.0", "19.0.0rc1", "20.2"])
def test_pyav_18_and_later_can(version: str) -> None:
    assert pyav_cuda_version_gap(version) is None


def test_this_pyav_is_checked_for_real() -> None:
    import av

    assert pyav_cuda_version_gap(str(av.__version__)) is None  # the pinned test environment: 18.x


@pytest.mark.parametrize(
    ("frame_fmt", "codec_fmt", "nvdec"),
    [
        ("cuda", "cuda", True),  # surface left on the GPU
        ("nv12", "cuda", True),  # downloaded surface: the decoder still outputs CUDA frames
        ("p010le", "cuda", True),
        ("yuv420p", "yuv420p", False),  # software fallback (at open or later)
        ("nv12", "nv12", False),
        ("yuv420p", None, False),
    ],
)
def test_decoded_on_follows_the_decoders_output_format(
    frame_fmt: str, codec_fmt: str | None, nvdec: bool
) -> None:
    assert decoded_on_nvdec(frame_fmt, codec_fmt) is nvdec


def test_ten_bit_surfaces_are_converted_on_the_gpu() -> None:
    assert {"nv12", "p010le", "p016le"} <= GPU_SURFACES


@pytest.mark.parametrize(
    ("space", "crange", "height", "want"),
    [
        ("ColorSpace.BT_709", "ColorRange.MPEG", 480, ("bt709", False)),
        ("ColorSpace.BT_601", "ColorRange.JPEG", 1080, ("bt601", True)),
        ("ColorSpace.UNSPEC", "ColorRange.UDEF", 1080, ("bt709", False)),
        ("ColorSpace.UNSPEC", "ColorRange.UDEF", 576, ("bt601", False)),
        ("BT_2020", "JPEG", 2160, ("bt2020", True)),
    ],
)
def test_nvcodec_colour_comes_from_the_demuxer(
    space: str, crange: str, height: int, want: tuple[str, bool]
) -> None:
    from framesift.stream.nvcodec_source import colour_of

    assert colour_of(space, crange, height) == want
