"""GPU tests that catch wrong values, not only crashes (skipped without CUDA; run by
bench/gpu_check.sh on a GPU machine).

- a CUDA-graph replay with new data of an already captured shape (and a padded bucket) against eager;
- preprocessing on CUDA (CLIP, letterbox, SAM) against the CPU;
- NVDEC decode parity on odd sizes, full range (MJPEG), BT.709 and 10-bit against CPU decoding;
- CUDA frames into YOLO-World and SAM against the same frames as numpy.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torch import nn

from framesift.engines.runtimes.base import TensorSpec
from framesift.engines.runtimes.torch_runtime import TorchRuntime

pytestmark = pytest.mark.gpu


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).relu().mean((2, 3)))


def test_cuda_graph_replays_new_data_like_eager() -> None:
    torch.manual_seed(0)
    net = _Net()
    spec_in, spec_out = (
        [TensorSpec("x", "float", ("batch", 3, 16, 16))],
        [TensorSpec("y", "float", ("batch", 4))],
    )
    eager = TorchRuntime(net, spec_in, spec_out, device="cuda", precision="fp32")
    graphs = TorchRuntime(net, spec_in, spec_out, device="cuda", precision="fp32", cuda_graphs=True)
    outs = []
    for seed, n in [(1, 8), (2, 8), (3, 5), (4, 8), (5, 3)]:  # same shape twice, then sizes in one bucket
        x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)).cuda()
        a, b = eager.run({"x": x}), graphs.run({"x": x})
        np.testing.assert_allclose(b["y"], a["y"], rtol=1e-4, atol=1e-5)
        outs.append(b["y"])
    assert not np.allclose(outs[0], outs[1])  # the replay saw the new data
    assert len(graphs._graphs) == 2  # buckets 8 and 4: sizes 8, 5, 3 share two captures


def test_clip_preprocessing_on_cuda_equals_cpu() -> None:
    from framesift.engines.models.clip_preprocess import ClipPreprocessor, PreprocessCfg

    cfg = PreprocessCfg.from_open_clip({"size": 224})
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(360, 640), (360, 640), (241, 319)]
    ]
    cpu = ClipPreprocessor(cfg, "cpu")(frames)
    gpu = ClipPreprocessor(cfg, "cuda")([torch.from_numpy(f).cuda() for f in frames]).cpu()
    assert (gpu - cpu).abs().mean().item() < 0.01 and (gpu - cpu).abs().max().item() < 0.1


def test_detector_and_sam_preprocessing_on_cuda_equal_cpu() -> None:
    from framesift.engines.models.detect_post import letterbox
    from framesift.engines.models.sam import preprocess

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(3)]
    cpu, _ = letterbox(frames, 640, device="cpu")
    gpu, _ = letterbox([torch.from_numpy(f).cuda() for f in frames], 640, device="cuda")
    assert (gpu.cpu() - cpu).abs().max().item() <= 1.0 / 255.0 + 1e-6
    s_cpu = preprocess(frames[0], "cpu")
    s_gpu = preprocess(torch.from_numpy(frames[0]).cuda(), "cuda").cpu()
    assert (s_gpu - s_cpu).abs().max().item() < 0.05


def _encode(
    path: Path,
    codec: str,
    w: int,
    h: int,
    *,
    pix_fmt: str,
    colorspace: int | None = None,
    full: bool = False,
    n: int = 12,
) -> Path:
    try:
        with av.open(str(path), "w") as out:
            s = out.add_stream(codec, rate=Fraction(25))
            s.width, s.height, s.pix_fmt = w, h, pix_fmt
            if colorspace is not None:
                s.codec_context.colorspace = colorspace
                s.codec_context.color_primaries = colorspace
                s.codec_context.color_trc = colorspace
            if full:
                s.codec_context.color_range = 2
            yy, xx = np.mgrid[0:h, 0:w]
            for i in range(n):
                img = np.stack([(xx * 3 + i * 9) % 256, (yy * 2 + i * 5) % 256, (xx + yy) % 256], -1)
                f = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24").reformat(format=pix_fmt)
                if colorspace is not None:
                    f.colorspace = colorspace
                if full:
                    f.color_range = 2
                for p in s.encode(f):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)
    except (av.FFmpegError, ValueError) as exc:
        pytest.skip(f"this PyAV cannot encode {codec}/{pix_fmt}: {exc}")
    return path


CASES = {
    "odd-size-full-range-mjpeg": dict(codec="mjpeg", w=321, h=241, pix_fmt="yuvj420p", full=True),
    "bt709-h264": dict(codec="libx264", w=640, h=360, pix_fmt="yuv420p", colorspace=1),
    "10bit-hevc": dict(codec="libx265", w=320, h=240, pix_fmt="yuv420p10le"),
    "odd-crop-h264": dict(codec="libx264", w=318, h=238, pix_fmt="yuv420p"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nvdec_frames_equal_cpu_frames(case: str, tmp_path: Path) -> None:
    from framesift.stream.pyav_cuda_source import PyAVCudaSource
    from framesift.stream.pyav_source import PyAVSource
    from framesift.stream.sources.file import FileSourceConfig

    spec = dict(CASES[case])
    path = _encode(tmp_path / f"{case}.mkv", **spec)  # type: ignore[arg-type]
    cfg = FileSourceConfig(type="file", path=str(path))
    cpu_src = PyAVSource(cfg, "cpu")
    cpu_src.open()
    cpu = list(cpu_src.frames())
    cpu_src.close()
    gpu_src = PyAVCudaSource(cfg, "gpu", gpu_frames=True)
    gpu_src.open()
    gpu = list(gpu_src.frames())
    gpu_src.close()
    assert len(gpu) == len(cpu) > 0
    on_nvdec = [f.meta["decoded_on"] == "nvdec" for f in gpu]
    if case.startswith("odd-size") and not any(on_nvdec):
        pytest.skip("this GPU's NVDEC does not decode this MJPEG stream (frames said decoded_on: cpu)")
    assert all(on_nvdec), [f.meta for f in gpu[:3]]
    for a, b in zip(cpu, gpu, strict=True):
        img = b.image.cpu().numpy() if isinstance(b.image, torch.Tensor) else b.image
        assert img.shape == a.image.shape, case
        d = np.abs(img.astype(np.int16) - a.image.astype(np.int16))
        assert d.mean() <= 2.0 and np.percentile(d, 99.9) <= 12, (case, d.mean(), d.max())


@pytest.fixture(scope="module")
def world_det():  # type: ignore[no-untyped-def]
    pytest.importorskip("ultralytics")
    from framesift.engines.cache import EngineCache
    from framesift.engines.models.yolo_world import YoloWorld, build_reference
    from tests.detect.conftest import hashed_text_encoder

    torch.manual_seed(0)
    model = build_reference("s", 2)
    for h in model.model[-1].cv4:
        h.bias.data.fill_(0.0)
    import tempfile

    cache = EngineCache(Path(tempfile.mkdtemp()))
    return YoloWorld(
        model,
        imgsz=320,
        cache=cache,
        device="cuda",
        runtime="torch",
        precision="fp32",
        text_encoder=hashed_text_encoder,
        conf=0.01,
    )


def test_cuda_frames_into_yolo_world_equal_numpy_frames(world_det) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (360, 640, 3), dtype=np.uint8) for _ in range(2)]
    a = world_det.detect_arrays(frames, ["person", "car"])
    b = world_det.detect_arrays([torch.from_numpy(f).cuda() for f in frames], ["person", "car"])
    assert len(a) == len(b) == 2 and sum(len(x) for x in a) > 0
    for x, y in zip(a, b, strict=True):  # CUDA frames are resized on the GPU (within a grey level)
        assert abs(len(x) - len(y)) <= max(2, len(x) // 10), (len(x), len(y))
        top_x, top_y = x[np.argmax(x[:, 4])], y[np.argmax(y[:, 4])]
        np.testing.assert_allclose(top_x[:4], top_y[:4], atol=2.0)
        assert abs(top_x[4] - top_y[4]) < 0.02


def test_cuda_frames_into_sam_equal_numpy_frames(tmp_path: Path) -> None:
    pytest.importorskip("mobile_sam")
    from framesift.engines.cache import EngineCache
    from framesift.engines.models.sam import SamSegmenter, build_reference

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # planned on the CPU (the GPU machine has CPU onnxruntime): CUDA frames must still arrive
        seg = SamSegmenter(build_reference("vit_t"), cache=EngineCache(tmp_path), device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img[30:90, 40:120] = (200, 30, 30)
    boxes = np.array([[40, 30, 120, 90], [5, 5, 50, 45]], np.float32)
    a = seg.segment(img, boxes)
    b = seg.segment(torch.from_numpy(img).cuda(), boxes)
    assert a.shape == b.shape == (2, 120, 160)
    assert (a != b).mean() < 0.01
