"""``build_source`` resolves ``decoder`` through the GPU gate and says which decoder runs and why."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import framesift.gpu
from framesift.errors import EXIT_INPUT, SourceError
from framesift.gpu import GpuInfo, probe_gpu
from framesift.log import clear_secrets, redact
from framesift.samples import ClipInfo
from framesift.stream.factory import build_source, resolve_decoder
from framesift.stream.nvcodec_source import NvCodecSource, unsupported_features
from framesift.stream.pyav_cuda_source import PyAVCudaSource
from framesift.stream.pyav_source import PyAVSource
from framesift.stream.sources.device import DeviceSourceConfig
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.images import ImagesSourceConfig
from framesift.stream.sources.rtsp import RtspSourceConfig

ROOT = Path(__file__).resolve().parents[2]
cpu_only = pytest.mark.skipif(probe_gpu().cuda, reason="checks the CPU-only fallback")

H100 = GpuInfo(cuda=True, device_name="NVIDIA H100", pyav_cuda=True, nvcodec=True)
H100_NV_ONLY = GpuInfo(
    cuda=True,
    device_name="NVIDIA H100",
    nvcodec=True,
    pyav_cuda_reason="PyAV's FFmpeg was built without CUDA hwaccel",
)


@pytest.fixture
def gate_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of framesift's loggers, even if ``setup_logging`` stopped ``framesift`` propagating."""
    logger = logging.getLogger("framesift")
    old = logger.propagate
    logger.propagate = True
    caplog.set_level(logging.DEBUG, logger="framesift")
    try:
        yield caplog
    finally:
        logger.propagate = old


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Callable[[GpuInfo], None]:
    def use(info: GpuInfo) -> None:
        monkeypatch.setattr(framesift.gpu, "probe_gpu", lambda: info)

    return use


@cpu_only
def test_auto_on_this_machine_is_pyav_and_the_reason_is_logged(gate_log: pytest.LogCaptureFixture) -> None:
    src = build_source(FileSourceConfig(path="a.mp4"), source_id="cam1")
    assert type(src) is PyAVSource
    lines = [r.getMessage() for r in gate_log.records if ": decoder " in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("source cam1: decoder pyav (CPU decode: ")
    assert probe_gpu().reason in lines[0]
    assert [r.levelno for r in gate_log.records if ": decoder " in r.getMessage()] == [logging.INFO]


@cpu_only
@pytest.mark.parametrize("decoder", ["pyav-cuda", "nvcodec"])
def test_explicit_gpu_decoder_is_a_one_line_source_error(decoder: str) -> None:
    with pytest.raises(SourceError) as err:
        build_source(FileSourceConfig(path="/data/in.mp4", decoder=decoder))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"/data/in.mp4: decoder '{decoder}' is not available on this machine: ")
    assert probe_gpu().reason in msg and "use decoder: auto" in msg


@cpu_only
@pytest.mark.parametrize("decoder", ["pyav-cuda", "nvcodec"])
def test_explicit_gpu_decoder_cli_exit_code_3(tmp_path: Path, decoder: str) -> None:
    cfg = tmp_path / "gpu.yaml"
    cfg.write_text(f"sources:\n  - {{type: file, path: {tmp_path}/in.mp4, decoder: {decoder}}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "run", str(cfg), "--metrics-port", "0", "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("framesift: error:")]
    assert len(errors) == 1 and f"decoder '{decoder}' is not available" in errors[0], proc.stderr


@pytest.mark.parametrize(
    ("gpu", "decoder", "cls"),
    [
        (H100, "auto", PyAVCudaSource),
        (H100_NV_ONLY, "auto", NvCodecSource),
        (H100, "pyav-cuda", PyAVCudaSource),
        (H100, "nvcodec", NvCodecSource),
        (H100, "pyav", PyAVSource),
    ],
)
def test_factory_builds_the_selected_gpu_source(
    fake_gpu: Callable[[GpuInfo], None],
    gate_log: pytest.LogCaptureFixture,
    gpu: GpuInfo,
    decoder: str,
    cls: type,
) -> None:
    fake_gpu(gpu)
    src = build_source(RtspSourceConfig(url="rtsp://127.0.0.1:1/x", decoder=decoder), source_id="c")
    assert type(src) is cls
    (line,) = [r.getMessage() for r in gate_log.records if ": decoder " in r.getMessage()]
    expected = {PyAVCudaSource: "pyav-cuda", NvCodecSource: "nvcodec", PyAVSource: "pyav"}[cls]
    assert line.startswith(f"source c: decoder {expected} (")


def test_auto_reads_the_codec_of_a_local_file(
    fake_gpu: Callable[[GpuInfo], None], make_clip: Callable[..., ClipInfo]
) -> None:
    fake_gpu(H100)
    h264 = make_clip("a.mp4", segments=(3,), width=160, height=120)
    assert resolve_decoder(FileSourceConfig(path=str(h264.path)))[0] == "pyav-cuda"
    # A codec NVDEC does not decode stays on the CPU, and the reason names it.
    ffv1 = Path(h264.path).with_name("b.mkv")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(h264.path), "-c:v", "ffv1", str(ffv1)],
        check=True,
        timeout=60,
    )
    decoder, reason = resolve_decoder(FileSourceConfig(path=str(ffv1)))
    assert decoder == "pyav" and "ffv1" in reason


def test_auto_never_picks_nvcodec_for_what_it_cannot_do(fake_gpu: Callable[[GpuInfo], None]) -> None:
    fake_gpu(H100_NV_ONLY)
    cfg = FileSourceConfig(path="a.mp4", keyframes_only=True)
    decoder, reason = resolve_decoder(cfg)
    assert decoder == "pyav" and "keyframes_only" in reason
    with pytest.raises(SourceError, match="'nvcodec' does not support keyframes_only"):
        build_source(cfg.model_copy(update={"decoder": "nvcodec"}))
    assert resolve_decoder(DeviceSourceConfig(device="/dev/video0"))[0] == "pyav"
    assert resolve_decoder(ImagesSourceConfig(path="/x/*.jpg"))[0] == "pyav"


def test_unsupported_features() -> None:
    assert unsupported_features(FileSourceConfig(path="a.mp4")) == []
    assert unsupported_features(FileSourceConfig(path="a.mp4", start=1.0)) == ["start/end windows"]
    assert unsupported_features(DeviceSourceConfig(device="/dev/video0")) == ["device inputs"]


def test_gpu_modules_are_not_imported_on_the_cpu_path(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip("a.mp4", segments=(2,), width=160, height=120)
    code = (
        "import sys\n"
        "from framesift.stream.sources.file import FileSourceConfig\n"
        "from framesift.stream.factory import build_source\n"
        f"src = build_source(FileSourceConfig(path={str(clip.path)!r}))\n"
        "src.open(); n = sum(1 for _ in src.frames()); src.close()\n"
        "from framesift.gpu import probe_gpu\n"
        "mods = ['PyNvVideoCodec', 'framesift.stream.gpu_color', 'framesift.stream.nvcodec_source',"
        " 'framesift.stream.pyav_cuda_source'] + ([] if probe_gpu().cuda else ['torch'])\n"
        "bad = [m for m in mods if m in sys.modules]\n"
        "print(n, bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "[]"], out.stdout


@pytest.fixture
def forget_secrets() -> Iterator[None]:
    yield
    clear_secrets()


@pytest.mark.parametrize("decoder", ["auto", "nvcodec"])
def test_password_never_in_errors_or_logs(
    gate_log: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    forget_secrets: None,
    decoder: str,
) -> None:
    url = "rtsp://user:secret@127.0.0.1:1/x"
    cfg = RtspSourceConfig(url=url, decoder=decoder, open_timeout_s=2, read_timeout_s=2)
    with pytest.raises(SourceError) as err:
        if probe_gpu().cuda and decoder != "auto":  # pragma: no cover - GPU machines build it
            raise SourceError(redact(url))
        src = build_source(cfg)
        try:
            src.open()
        finally:
            src.close()
    msg = str(err.value)
    assert "127.0.0.1:1" in msg  # the input is named...
    assert "secret" not in msg  # ...without its password
    # registered when the source was built: masked wherever a library echoes it later
    assert redact("ffmpeg: auth as user secret failed") == "ffmpeg: auth as user *** failed"
    logged = "\n".join(r.getMessage() for r in gate_log.records)
    assert "secret" not in logged
    if decoder == "auto":
        assert ": decoder " in logged
    out, errout = capfd.readouterr()
    assert "secret" not in out + errout


def test_probe_reports_the_decoder_and_refuses_an_unavailable_one(
    make_clip: Callable[..., ClipInfo], fake_gpu: Callable[[GpuInfo], None]
) -> None:
    from framesift.stream.probe import probe

    clip = str(make_clip("p.mp4", segments=(3,), width=160, height=120).path)
    info = probe(clip)
    if not probe_gpu().cuda:
        assert info["decoder"] == f"pyav (CPU decode: {probe_gpu().reason})"
        with pytest.raises(
            SourceError, match=rf"^{clip}: decoder 'pyav-cuda' is not available on this machine"
        ):
            probe(clip, decoder="pyav-cuda")
    fake_gpu(H100)
    assert probe(clip)["decoder"].startswith("pyav-cuda (NVDEC through PyAV's CUDA hwaccel on NVIDIA H100")
