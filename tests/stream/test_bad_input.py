"""Bad input: each a clear one-line error naming the input (sources and `framesift probe`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from framesift.errors import EXIT_INPUT, DecodeError, SourceError
from framesift.samples import write_clip
from framesift.stream.factory import build_source
from framesift.stream.probe import probe
from framesift.stream.sources.device import DeviceSourceConfig
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.rtsp import RtspSourceConfig
from tests.stream.helpers import barcodes, corrupt_middle, ffmpeg_count, read_all


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def audio_only(path: Path) -> Path:
    out = av.open(str(path), "w")
    stream = out.add_stream("aac", rate=16000)
    for i in range(10):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, i * 1024
        for p in stream.encode(frame):
            out.mux(p)
    for p in stream.encode(None):
        out.mux(p)
    out.close()
    return path


def unknown_codec(path: Path) -> Path:
    """An AVI whose video FourCC names no codec FFmpeg knows."""
    write_clip(path, segments=(5,), codec="mpeg4", width=160, height=120)
    data = path.read_bytes()
    assert data.count(b"FMP4") == 2
    path.write_bytes(data.replace(b"FMP4", b"ZQX9"))
    return path


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, type[SourceError], str]]:
    """name -> (path, error class, words the message must contain)."""
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    moovless = tmp_path / "cut.mp4"
    write_clip(moovless, segments=(20,), width=160, height=120)
    moovless.write_bytes(moovless.read_bytes()[: moovless.stat().st_size // 2])  # index (moov) lost
    return {
        "missing": (tmp_path / "nope.mp4", SourceError, "file not found"),
        "empty": (empty, SourceError, "empty"),
        "text": (text, SourceError, "not a video file"),
        "audio": (audio_only(tmp_path / "sound.m4a"), DecodeError, "no video stream"),
        "codec": (unknown_codec(tmp_path / "odd.avi"), DecodeError, "not supported"),
        "moovless": (moovless, SourceError, "not a video file"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "text", "audio", "codec", "moovless"])
def test_bad_file_is_one_clear_error(bad_inputs, case: str) -> None:
    path, cls, words = bad_inputs[case]
    src = build_source(FileSourceConfig(path=str(path)))
    with pytest.raises(cls) as err:
        src.open()
    msg = str(err.value)
    assert str(path) in msg and words in msg and "\n" not in msg
    src.close()


@pytest.mark.parametrize("case", ["missing", "empty", "text", "audio", "codec", "moovless"])
def test_probe_cli_exit_code_3_one_line(bad_inputs, case: str) -> None:
    path, _cls, words = bad_inputs[case]
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "probe", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == EXIT_INPUT
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("framesift: error: ") and str(path) in lines[0] and words in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_probe_cli_unreachable_url() -> None:
    url = f"rtsp://127.0.0.1:{closed_port()}/cam"
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "probe", url, "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_INPUT
    assert (
        proc.stderr.strip()
        == f"framesift: error: {url}: connection refused (is the server running? check host and port)"
    )


def test_probe_cli_table_and_json(make_clip) -> None:
    import json

    info = make_clip(segments=(50,), width=160, height=120, gop=10)
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "probe", str(info.path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["codec"] == "h264" and (data["width"], data["height"]) == (160, 120)
    assert data["fps"] == 25 and data["frames"] == 50 and data["duration_s"] == 2.0
    assert data["keyframe_interval"] == {"mean": 10, "min": 10, "max": 10}
    assert data["frame_interval_ms"] == {"mean": 40, "min": 40, "max": 40, "variable": False}
    table = subprocess.run(
        [sys.executable, "-m", "framesift", "probe", str(info.path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0
    assert any(line.split()[:2] == ["codec", "h264"] for line in table.stdout.splitlines())


def test_unreachable_url_refused() -> None:
    url = f"rtsp://user:secret@127.0.0.1:{closed_port()}/cam"
    src = build_source(RtspSourceConfig(url=url, open_timeout_s=2, read_timeout_s=1))
    assert "secret" not in src.id and "user" not in src.id
    with pytest.raises(SourceError) as err:
        src.open()
    assert "connection refused" in str(err.value) and "secret" not in str(err.value)
    assert "127.0.0.1" in str(err.value)


@pytest.mark.skipif(sys.platform != "linux", reason="v4l2")
def test_bad_device_path() -> None:
    src = build_source(DeviceSourceConfig(device="/dev/video-framesift-missing", open_timeout_s=2))
    with pytest.raises(SourceError, match="capture device not found"):
        src.open()


@pytest.mark.parametrize("ext", [".ts", ".mkv"])
def test_truncated_file_delivers_frames_up_to_the_cut(tmp_path: Path, ext: str) -> None:
    info = write_clip(tmp_path / f"clip{ext}", segments=(50,), width=160, height=120, gop=10)
    data = info.path.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) * 6 // 10])
    frames = read_all(FileSourceConfig(path=str(cut)))
    codes = barcodes(frames)
    assert 20 <= len(codes) < 50
    assert codes == list(range(len(codes)))  # complete and in order up to the cut, then a normal end


@pytest.mark.parametrize(("codec", "ext"), [("h264", ".ts"), ("mjpeg", ".mkv")])
def test_corrupted_middle_counts_errors_and_goes_on(tmp_path: Path, codec: str, ext: str) -> None:
    info = write_clip(tmp_path / f"clip{ext}", segments=(50,), codec=codec, width=160, height=120, gop=10)
    bad = corrupt_middle(info.path, tmp_path / f"bad{ext}", 0.4, 0.6)
    src = build_source(FileSourceConfig(path=str(bad)))
    src.open()
    frames = list(src.frames())
    src.close()
    codes = barcodes(frames)
    assert src.stats.decode_errors > 0
    assert codes[:15] == list(range(15))  # before the damage: everything
    assert codes[-5:] == [45, 46, 47, 48, 49]  # decoding went on after it
    assert len(codes) < 50
    # frame numbers are FFmpeg's count, which includes the corrupt frames skipped here
    assert [f.index for f in frames] == [ffmpeg_count(bad)[f.pts] for f in frames]


def test_gpu_decoders_raise_clear_error(make_clip) -> None:
    info = make_clip(segments=(2,))
    for decoder in ("pyav-cuda", "nvcodec"):
        with pytest.raises(SourceError, match=f"decoder '{decoder}' is not available on this machine"):
            build_source(FileSourceConfig(path=str(info.path), decoder=decoder))


def test_opencv_missing_file_and_keyframes(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found"):
        build_source(FileSourceConfig(path=str(tmp_path / "x.mp4"), decoder="opencv")).open()
    with pytest.raises(ValueError, match="keyframes_only is not supported by decoder: opencv"):
        FileSourceConfig(path="x.mp4", decoder="opencv", keyframes_only=True)
    text = tmp_path / "t.mp4"
    text.write_text("no video\n" * 20)
    with pytest.raises(SourceError, match="OpenCV cannot open"):
        build_source(FileSourceConfig(path=str(text), decoder="opencv")).open()
    assert os.path.exists(text)


def test_probe_measures_a_variable_frame_rate(tmp_path: Path) -> None:
    """The header says one rate; the timestamps say 10 fps, then 25 fps: probe reports both."""
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = [i * 100 for i in range(20)] + [2000 + i * 40 for i in range(20)]
        for i, t in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 6, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    info = probe(str(path))
    assert info["frames"] == 40
    assert info["frame_interval_ms"]["variable"] is True
    assert (info["frame_interval_ms"]["min"], info["frame_interval_ms"]["max"]) == (40, 100)
    assert info["frame_interval_ms"]["mean"] == pytest.approx((2000 + 19 * 40) / 39, abs=1e-3)
