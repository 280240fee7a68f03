"""HTTP/HLS sources over a real local HTTP server; source ids; the fps sampler; probe of a live stream."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import pytest

from framesift.events import SourceStatus
from framesift.frame import Frame
from framesift.samples import read_barcode, write_clip
from framesift.stream.capture import CaptureWorker
from framesift.stream.factory import build_source, source_id_for
from framesift.stream.opencv_source import OpenCVSource
from framesift.stream.probe import probe
from framesift.stream.pyav_source import PyAVSource
from framesift.stream.ringbuffer import BufferClosed, RingBuffer
from framesift.stream.sampling import FpsSampler, output_size
from framesift.stream.sources.device import DeviceSourceConfig
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.http import HttpSourceConfig
from framesift.stream.sources.images import ImagesSourceConfig
from framesift.stream.sources.rtsp import RtspSourceConfig
from tests.rtsp_server import RtspServer


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served by a real HTTP server on 127.0.0.1 (stopped after the test)."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="http-test-server", daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def write_hls(directory: Path, frames: int = 50) -> None:
    info = write_clip(directory / "clip.mp4", segments=(frames,), width=160, height=120, gop=25)
    with av.open(str(info.path)) as inp:
        s = inp.streams.video[0]
        out = av.open(
            str(directory / "index.m3u8"),
            "w",
            format="hls",
            options={"hls_time": "1", "hls_playlist_type": "vod"},
        )
        o = out.add_stream_from_template(s)
        for p in inp.demux(s):
            if p.dts is None:
                continue
            p.stream = o
            out.mux(p)
        out.close()


def test_hls_vod_over_http_is_complete_and_ends(http_dir: tuple[Path, str]) -> None:
    directory, base = http_dir
    write_hls(directory)
    cfg = HttpSourceConfig(url=f"{base}/index.m3u8", open_timeout_s=5, read_timeout_s=5)
    source = build_source(cfg)
    assert source.id == source_id_for(cfg) == f"127.0.0.1:{base.rsplit(':', 1)[1]}_index.m3u8"
    buf: RingBuffer[Frame] = RingBuffer(64, "block")
    events: list[SourceStatus] = []
    worker = CaptureWorker(source, buf, on_status=events.append)
    worker.start()
    got = []
    while True:
        try:
            f = buf.get(timeout=10)
        except BufferClosed:
            break
        assert f is not None
        got.append(read_barcode(f.image))
    assert worker.join(10)
    assert got == list(range(50))
    assert [e.state for e in events] == ["connecting", "up", "eof"]  # finite: ends like a file


def test_http_mp4_and_missing_url(http_dir: tuple[Path, str]) -> None:
    from framesift.errors import SourceError

    directory, base = http_dir
    write_clip(directory / "a.mp4", segments=(10,), width=160, height=120)
    src = build_source(HttpSourceConfig(url=f"{base}/a.mp4", open_timeout_s=5, read_timeout_s=5))
    src.open()
    assert [read_barcode(f.image) for f in src.frames()] == list(range(10))
    src.close()
    missing = build_source(HttpSourceConfig(url=f"{base}/nope.mp4", open_timeout_s=5, read_timeout_s=5))
    with pytest.raises(SourceError, match="not found on the server"):
        missing.open()


def test_source_ids_never_hold_credentials() -> None:
    assert source_id_for(FileSourceConfig(path="/data/videos/Front Door.mp4")) == "Front_Door"
    assert source_id_for(FileSourceConfig(path="x.mp4", id="cam1")) == "cam1"
    rtsp = RtspSourceConfig(url="rtsp://admin:s3cret@10.0.0.5:554/Streaming/Channels/101")
    assert source_id_for(rtsp) == "10.0.0.5:554_Streaming_Channels_101"
    assert "admin" not in source_id_for(rtsp) and "s3cret" not in source_id_for(rtsp)
    assert source_id_for(HttpSourceConfig(url="https://u:p@cdn.example.com/live/stream.m3u8?token=abc")) == (
        "cdn.example.com_live_stream.m3u8"
    )
    assert source_id_for(DeviceSourceConfig(device="/dev/video0")) == "video0"
    assert source_id_for(ImagesSourceConfig(path="/data/shots/*.jpg")) == "shots"
    assert source_id_for(ImagesSourceConfig(path="/data/shots/")) == "shots"


def test_backend_selection() -> None:
    assert isinstance(build_source(FileSourceConfig(path="a.mp4")), PyAVSource)
    assert isinstance(build_source(FileSourceConfig(path="a.mp4", decoder="pyav")), PyAVSource)
    assert isinstance(build_source(FileSourceConfig(path="a.mp4", decoder="opencv")), OpenCVSource)
    src = build_source(RtspSourceConfig(url="rtsp://h/x", transport="udp"), source_id="x")
    assert src.id == "x" and src.live
    assert isinstance(src, PyAVSource) and src.options["rtsp_transport"] == "udp"
    assert build_source(RtspSourceConfig(url="rtsp://h/x")).options["rtsp_transport"] == "tcp"  # type: ignore[attr-defined]


def test_fps_sampler_exact_slots() -> None:
    s = FpsSampler(10)
    kept = [i for i in range(100) if s.keep(Fraction(i, 30))]
    assert kept == list(range(0, 100, 3))
    s = FpsSampler(29.97)
    assert s.period == Fraction(100, 2997)
    s = FpsSampler(2)
    # a gap in the stream: the next frame after it is kept, slots stay on the original grid
    assert [s.keep(Fraction(t, 10)) for t in (0, 3, 5, 26, 29, 30, 31)] == [
        True,
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    s = FpsSampler(None)
    assert all(s.keep(Fraction(i)) for i in range(5))


def test_output_size() -> None:
    assert output_size(1920, 1080, None, None) is None
    assert output_size(1920, 1080, 640, None) == (640, 360)
    assert output_size(1920, 1080, None, 240) == (426, 240)
    assert output_size(1920, 1080, 300, 300) == (300, 300)


def test_probe_live_rtsp(rtsp_server: RtspServer) -> None:
    info = probe(rtsp_server.url(), timeout=5)
    assert info["codec"] == "h264" and (info["width"], info["height"]) == (160, 120)
    assert info["live"] is True and info["frames"] is None
    assert info["keyframe_interval"] is not None and info["keyframe_interval"]["mean"] == pytest.approx(
        10, abs=1
    )
