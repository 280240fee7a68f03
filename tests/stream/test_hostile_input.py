"""Hostile or mistaken media input: refused in one line, bounded in time and memory, never silent."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import pytest

from framesift.errors import EXIT_INPUT, DecodeError, SourceError
from framesift.samples import write_clip
from framesift.stream._errors import check_local_file, open_error, reason
from framesift.stream.factory import build_source
from framesift.stream.probe import probe
from framesift.stream.sources.file import FileSourceConfig
from tests.stream.helpers import read_all, read_source

ROOT = Path(__file__).resolve().parents[2]


def framesift(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "framesift", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("framesift: error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# -- not a regular file ---------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.mp4"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock.mp4"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        yield path


def test_check_local_file_refuses_what_is_not_a_regular_file(
    tmp_path: Path, fifo: Path, unix_socket: Path
) -> None:
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    cases = {
        fifo: "is a named pipe (FIFO), not a video file",
        unix_socket: "is a socket, not a video file",
        tmp_path: "is a directory, not a video file",
        loop: "cannot read (Too many levels of symbolic links; check the path)",
    }
    if os.path.exists("/dev/null"):
        cases[Path("/dev/null")] = (
            "is a character device, not a video file (give a regular file; for a camera"
        )
    for path, words in cases.items():
        with pytest.raises(SourceError) as err:
            check_local_file(str(path))
        assert str(err.value) == f"{path}: {words}" + str(err.value).split(words, 1)[1]
        assert "\n" not in str(err.value)


def test_file_source_refuses_a_fifo_without_blocking(fifo: Path) -> None:
    src = build_source(FileSourceConfig(path=str(fifo)))
    with pytest.raises(SourceError, match="is a named pipe"):
        src.open()  # before: blocked in FFmpeg's open() until a writer appeared


def test_probe_cli_refuses_a_fifo_at_once(fifo: Path) -> None:
    t0 = time.monotonic()
    proc = framesift("probe", "--timeout", "3", str(fifo), timeout=30)
    assert proc.returncode == EXIT_INPUT
    assert one_error_line(proc).startswith(
        f"framesift: error: {fifo}: is a named pipe (FIFO), not a video file"
    )
    assert time.monotonic() - t0 < 20
    proc = framesift("probe", "--timeout", "3", f"file:{fifo}", timeout=30)  # FFmpeg's file: protocol
    assert proc.returncode == EXIT_INPUT and "is a named pipe" in one_error_line(proc)


def test_collect_refuses_a_fifo(fifo: Path, tmp_path: Path) -> None:
    proc = framesift("collect", str(fifo), "-o", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert f"{fifo}: is a named pipe (FIFO), not a video file" in one_error_line(proc)


# -- probe --timeout holds whatever the server does -----------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A local TCP server that accepts connections and never sends a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=accept, name="silent-server")
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    t.join(5)
    for c in conns:
        c.close()
    srv.close()


@pytest.mark.parametrize("scheme", ["http", "rtsp", "tcp", "https"])
def test_probe_timeout_holds_for_a_server_that_never_answers(silent_server: int, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{silent_server}/cam"
    t0 = time.monotonic()
    with pytest.raises(SourceError) as err:
        probe(url, timeout=1.5)
    assert time.monotonic() - t0 < 1.5 + 1.0
    assert str(err.value) == (
        f"{url}: no answer within 1.5 s (check that the server is up and reachable, or raise --timeout)"
    )


def test_probe_timeout_holds_for_a_server_that_trickles() -> None:
    """Answers HTTP 200, then one byte every 0.2 s: every read succeeds, the probe never completes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve() -> None:
        conn = srv.accept()[0]
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\n\r\n")
            while not stop.wait(0.2):
                try:
                    conn.sendall(b"\x47")
                except OSError:
                    return

    t = threading.Thread(target=serve, name="trickle-server")
    t.start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}/live.ts"
    t0 = time.monotonic()
    try:
        with pytest.raises(SourceError, match=r"no answer within 1\.5 s"):
            probe(url, timeout=1.5)
        assert time.monotonic() - t0 < 1.5 + 1.0
    finally:
        stop.set()
        t.join(5)
        srv.close()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_probe_cli_refuses_a_timeout_that_is_not_seconds(value: str) -> None:
    proc = framesift("probe", f"--timeout={value}", "x.mp4")
    assert proc.returncode == 2
    assert "--timeout:" in one_error_line(proc)


# -- packets FFmpeg does not implement ------------------------------------------------------------


def mjpeg_with_unsupported_frames(path: Path, frames: list[int], n: int = 100) -> Path:
    """An MJPEG clip where the JPEG frames ``frames`` use chroma sampling FFmpeg does not implement
    (its decoder answers AVERROR_PATCHWELCOME for those packets only)."""
    write_clip(path, segments=(n,), codec="mjpeg", width=160, height=120)
    data = bytearray(path.read_bytes())
    sofs = [m.start() for m in re.finditer(b"\xff\xc0", data)]
    assert len(sofs) == n
    for i in frames:
        assert data[sofs[i] + 9] == 3 and data[sofs[i] + 11] == 0x22  # 3 components, Y sampled 2x2
        data[sofs[i] + 11] = 0x33
    path.write_bytes(bytes(data))
    return path


def test_one_unimplemented_packet_is_skipped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = mjpeg_with_unsupported_frames(tmp_path / "odd.mkv", [68])
    src = build_source(FileSourceConfig(path=str(clip)))
    with caplog.at_level(logging.WARNING, logger="framesift"):
        frames = read_source(src)
    assert len(frames) == 99
    assert src.stats.decode_errors == 1 and src.stats.extra == {"unsupported_packets": 1}
    assert any("use a feature FFmpeg does not implement" in r.getMessage() for r in caplog.records)


def test_unimplemented_first_packets_then_frames_decode(tmp_path: Path) -> None:
    clip = mjpeg_with_unsupported_frames(tmp_path / "odd.mkv", [0, 1, 2])
    src = build_source(FileSourceConfig(path=str(clip)))
    assert len(read_source(src)) == 97 and src.stats.extra == {"unsupported_packets": 3}


def test_unsupported_codec_when_no_packet_decodes(tmp_path: Path) -> None:
    clip = mjpeg_with_unsupported_frames(tmp_path / "odd.mkv", list(range(30)), n=30)
    src = build_source(FileSourceConfig(path=str(clip)))
    with pytest.raises(DecodeError) as err:
        read_source(src)
    assert str(err.value).startswith(f"{clip}: video codec 'mjpeg' is not supported by this FFmpeg build")


# -- FFmpeg's error codes stay out of messages ----------------------------------------------------


def test_reasons_have_no_errno_numbers() -> None:
    invalid = av.error.InvalidDataError(1094995529, "Invalid data found when processing input", "cam401.mp4")
    assert "[Errno" in str(invalid)  # what PyAV prints
    assert reason(invalid) == "Invalid data found when processing input"
    assert reason(
        av.error.PatchWelcomeError(-1163346256, "Not yet implemented in FFmpeg, patches welcome")
    ) == ("a feature FFmpeg does not implement")
    assert reason(OSError(5, "Input/output error")) == "Input/output error"
    assert reason(RuntimeError("[Errno 1094995529] bad")) == "bad"
    # a status-like number in a file name is not an HTTP status
    assert "unauthorized" not in str(open_error(invalid, "cam401.mp4"))
    msg = str(open_error(av.error.UnknownError(-1094995529, "Unknown error occurred", "x"), "x.mp4"))
    assert msg == "x.mp4: cannot open (Unknown error occurred)"


def test_a_stream_of_undecodable_packets_is_reported_without_errno(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mkv", segments=(220,), codec="mjpeg", width=64, height=48).path
    data = clip.read_bytes()
    # every JPEG loses its frame header: each packet is invalid data to the decoder
    clip.write_bytes(data.replace(b"\xff\xc0", b"\xff\xfe"))
    with pytest.raises(DecodeError) as err:
        read_all(FileSourceConfig(path=str(clip)))
    msg = str(err.value)
    assert "packets in a row could not be decoded" in msg
    assert "Errno" not in msg and not re.search(r"\d{6,}", msg), msg
