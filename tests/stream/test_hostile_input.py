"""Hostile or mistaken media input: refused in one line, bounded in time and memory, never silent."""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import cv2
import numpy as np
import pytest

from framesift.errors import EXIT_INPUT, DecodeError, SourceError
from framesift.samples import write_clip
from framesift.stream._errors import check_local_file, open_error, reason
from framesift.stream.factory import build_source
from framesift.stream.probe import probe
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.images import ImagesSource, ImagesSourceConfig, image_size, list_images
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


# -- image folders and globs ----------------------------------------------------------------------


def png(path: Path, width: int = 53, height: int = 37) -> Path:
    cv2.imwrite(str(path), np.full((height, width, 3), 128, np.uint8))
    return path


def test_glob_over_a_symlink_loop_ends_and_lists_each_file_once(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    png(root / "a.png")
    png(root / "sub" / "b.png")
    (root / "self").symlink_to(".")
    (root / "sub" / "up").symlink_to("..")
    (root / "twin.png").symlink_to("a.png")
    (root / "sub" / "dead").symlink_to("nowhere")
    code = (
        "import sys; from framesift.stream.sources.images import list_images; "
        "print('\\n'.join(list_images(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.monotonic()
    proc = subprocess.run(  # a subprocess: before the fix this never ended
        [sys.executable, "-c", code, f"{root}/**/*.png"], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(root / "a.png"), str(root / "sub" / "b.png")]
    assert time.monotonic() - t0 < 30


def test_recursive_glob_matches_like_glob_on_a_plain_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import glob

    for rel in ("1.png", "x/2.png", "x/y/3.png", "z/4.jpg", "x/.5.png", ".h/6.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    for pattern in ("**/*.png", "**", "x/**/*", "*/**/*.png", "**/y/*.png", "x/**", ".h/**/*.png"):
        expected = sorted(n for n in glob.glob(pattern, recursive=True) if os.path.isfile(n))
        assert list_images(pattern) == expected, pattern


def jpeg_with_exif(path: Path, width: int, height: int) -> Path:
    ok, data = cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))
    assert ok
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 40_000) + b"Exif\x00\x00" + b"\x00" * (40_000 - 6)
    path.write_bytes(data[:2].tobytes() + app1 + data[2:].tobytes())
    return path


def test_image_size_reads_headers_of_every_listed_format(tmp_path: Path) -> None:
    img = np.zeros((37, 53, 3), np.uint8)
    for ext in (".jpg", ".png", ".bmp", ".tif", ".webp", ".ppm", ".pgm"):
        path = tmp_path / f"i{ext}"
        assert cv2.imwrite(str(path), img[:, :, 0] if ext == ".pgm" else img)
        assert image_size(str(path)) == (53, 37), ext
    gif = tmp_path / "i.gif"
    with av.open(str(gif), "w") as out:
        s = out.add_stream("gif", rate=1)
        s.width, s.height, s.pix_fmt = 53, 37, "rgb8"
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="rgb8")):
            out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    assert image_size(str(gif)) == (53, 37)
    assert image_size(str(jpeg_with_exif(tmp_path / "exif.jpg", 53, 37))) == (53, 37)
    vp8x = b"RIFF" + b"\x00" * 4 + b"WEBPVP8X" + b"\x0a\x00\x00\x00" + b"\x00" * 4
    vp8x += (15999).to_bytes(3, "little") + (15999).to_bytes(3, "little")
    (tmp_path / "x.webp").write_bytes(vp8x)
    assert image_size(str(tmp_path / "x.webp")) == (16000, 16000)
    (tmp_path / "t.png").write_text("not an image")
    assert image_size(str(tmp_path / "t.png")) is None


def huge_png(path: Path, width: int, height: int) -> Path:
    """A real (valid) grey PNG of ``width`` x ``height`` that compresses to a few hundred kB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_images_over_max_pixels_are_skipped_before_decoding(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    png(folder / "a.png")
    big = huge_png(folder / "b_huge.png", 12_000, 12_000)  # 144 MP > the default 100 MP
    png(folder / "c.png")
    src = build_source(ImagesSourceConfig(path=str(folder)))
    assert isinstance(src, ImagesSource)
    with caplog.at_level(logging.WARNING, logger="framesift"):
        frames = read_source(src)
    assert [f.meta["path"] for f in frames] == [str(folder / "a.png"), str(folder / "c.png")]
    assert src.stats.decode_errors == 1 and src.stats.extra == {"too_large": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{big}: image of 12000x12000 pixels is over max_pixels (100000000); skipped (raise max_pixels to read it)"
    ]


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    png(tmp_path / "a.png", 53, 37)
    assert len(read_all(ImagesSourceConfig(path=str(tmp_path), max_pixels=53 * 37))) == 1
    src = build_source(ImagesSourceConfig(path=str(tmp_path), max_pixels=53 * 37 - 1))
    assert read_source(src) == [] and src.stats.extra == {"too_large": 1}
    with pytest.raises(ValueError, match="max_pixels"):
        ImagesSourceConfig(path="x", max_pixels=0)


def test_images_ffmpeg_refuses_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    png(tmp_path / "a.png")
    bad = tmp_path / "b.png"
    bad.write_text("this is not a png\n" * 20)
    src = build_source(ImagesSourceConfig(path=str(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="framesift"):
        frames = read_source(src)
    assert len(frames) == 1 and src.stats.decode_errors == 1 and src.stats.extra == {"unreadable": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{bad}: FFmpeg cannot read this image (Invalid data found when processing input); skipped"
    ]


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


def test_an_audio_file_with_cover_art_is_not_a_video(tmp_path: Path) -> None:
    """An MP3 with its album picture attached holds a "video" stream of one still: it is refused in
    one line (it used to play as a one-frame video), and the CLI says so with exit 3."""
    cover, song = tmp_path / "cover.png", tmp_path / "song.mp3"
    cv2.imwrite(str(cover), np.full((32, 32, 3), 200, np.uint8))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-i", str(cover), "-map", "0",
         "-map", "1", "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(song)],
        check=True,
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "scenes", str(song), "-o", str(tmp_path / "o"), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "has no video stream" in proc.stderr and "(cover art)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
