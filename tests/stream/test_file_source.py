"""PyAV and OpenCV file sources on generated clips (real encoding and decoding)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from framesift.samples import read_barcode
from framesift.stream.factory import build_source
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.images import ImagesSourceConfig
from tests.stream.helpers import barcodes, read_all


@pytest.mark.parametrize(
    ("codec", "name"), [("h264", "c.mp4"), ("hevc", "c.mp4"), ("mjpeg", "c.mkv"), ("h264", "c.ts")]
)
def test_frames_complete_in_order_with_exact_time(make_clip, codec: str, name: str) -> None:
    info = make_clip(name, segments=(20, 20), codec=codec, width=160, height=120, gop=10)
    frames = read_all(FileSourceConfig(path=str(info.path)))
    assert len(frames) == info.frames == 40
    assert barcodes(frames) == list(range(40))
    assert [f.index for f in frames] == list(range(40))
    t0 = frames[0].time
    for i, f in enumerate(frames):
        assert isinstance(f.time_base, Fraction)
        assert f.time - t0 == Fraction(i, 25)  # exact, no float drift
        assert f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8
        assert not f.image.flags.writeable
        assert f.source_id == "c"
    assert [f.index for f in frames if f.keyframe] == list(info.keyframes)


@pytest.mark.parametrize(
    ("fps", "target", "expected"),
    [
        (25, 5, list(range(0, 50, 5))),  # integer ratio: every 5th frame
        (25, 10, [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28, 30, 33, 35, 38, 40, 43, 45, 48]),  # 2.5
        (30, 7, [0, 5, 9, 13, 18, 22, 26, 30, 35, 39, 43, 48]),  # 30/7 = 4.2857...
        (25, 50, list(range(50))),  # above the source rate: everything
    ],
)
def test_target_fps_keeps_frames_by_presentation_time(make_clip, fps, target, expected) -> None:
    info = make_clip(segments=(50,), fps=fps, width=160, height=120)
    src = build_source(FileSourceConfig(path=str(info.path), target_fps=target))
    src.open()
    frames = list(src.frames())
    src.close()
    kept = [f.index for f in frames]
    assert kept == expected
    assert barcodes(frames) == expected
    if target <= fps:  # each 1/target slot keeps the first frame at or after it
        for k, f in enumerate(frames):
            assert f.time >= Fraction(k) / target
            assert f.time - Fraction(1, fps) < Fraction(k) / target
    assert src.stats.frames_decoded == 50
    assert src.stats.frames_skipped == 50 - len(expected)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_keyframes_only_returns_only_keyframes(make_clip, codec: str) -> None:
    info = make_clip(segments=(60,), codec=codec, width=160, height=120, gop=12)
    assert len(info.keyframes) >= 5
    frames = read_all(FileSourceConfig(path=str(info.path), keyframes_only=True))
    assert barcodes(frames) == list(info.keyframes)
    assert [f.index for f in frames] == list(info.keyframes)
    assert all(f.keyframe for f in frames)


@pytest.mark.parametrize(
    ("kw", "shape"),
    [
        ({"width": 80, "height": 64}, (64, 80, 3)),
        ({"width": 160}, (120, 160, 3)),  # aspect kept
        ({"height": 60}, (60, 80, 3)),
        ({"pixel_format": "gray"}, (240, 320)),
        ({"pixel_format": "bgr24", "width": 160}, (120, 160, 3)),
    ],
)
def test_output_size_and_pixel_format(make_clip, kw, shape) -> None:
    info = make_clip(segments=(5,), width=320, height=240)
    frames = read_all(FileSourceConfig(path=str(info.path), **kw))
    assert len(frames) == 5
    assert all(f.image.shape == shape for f in frames)
    if shape[0] >= 120:  # the barcode strip survives a 2x downscale, not more
        assert barcodes(frames) == list(range(5))


def test_bgr_and_rgb_are_channel_swapped(make_clip) -> None:
    info = make_clip(segments=(2,), width=160, height=120)
    rgb = read_all(FileSourceConfig(path=str(info.path)))[0].image
    bgr = read_all(FileSourceConfig(path=str(info.path), pixel_format="bgr24"))[0].image
    assert np.array_equal(rgb, bgr[..., ::-1])


def test_start_end_window(make_clip) -> None:
    info = make_clip(segments=(75,), width=160, height=120, gop=25)
    frames = read_all(FileSourceConfig(path=str(info.path), start=1.0, end=2.0))
    assert barcodes(frames) == list(range(25, 50))
    assert [f.index for f in frames] == list(range(25, 50))
    assert frames[0].time == 1 and frames[-1].time == Fraction(49, 25)


def test_loop_replays_with_increasing_time(make_clip) -> None:
    info = make_clip(segments=(10,), width=160, height=120)
    frames = read_all(FileSourceConfig(path=str(info.path), loop=True), limit=25)
    assert barcodes(frames) == [i % 10 for i in range(25)]
    assert [f.index for f in frames] == list(range(25))
    times = [f.time for f in frames]
    assert times == [Fraction(i, 25) for i in range(25)]


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_loop_within_a_window(make_clip, decoder) -> None:
    info = make_clip(segments=(50,), width=160, height=120, gop=10)
    cfg = FileSourceConfig(path=str(info.path), start=0.4, end=0.8, loop=True, decoder=decoder)  # 10..19
    frames = read_all(cfg, limit=25)
    assert barcodes(frames) == [10 + i % 10 for i in range(25)]
    assert [f.time for f in frames] == [Fraction(10 + i, 25) for i in range(25)]  # no gap at the seam
    assert [f.index for f in frames] == list(range(10, 35))


@pytest.mark.parametrize(
    "kw",
    [{}, {"target_fps": 5}, {"start": 1.0, "end": 2.0}, {"width": 128, "pixel_format": "gray"}],
)
def test_opencv_backend_delivers_the_same_frames(make_clip, kw) -> None:
    info = make_clip(segments=(75,), width=160, height=120, gop=25)
    ref = read_all(FileSourceConfig(path=str(info.path), **kw))
    ocv = read_all(FileSourceConfig(path=str(info.path), decoder="opencv", **kw))
    assert barcodes(ocv) == barcodes(ref) and len(ref) > 0
    assert [f.index for f in ocv] == [f.index for f in ref]
    assert all(f.time_base == Fraction(1, 1000) for f in ocv)
    assert [f.time for f in ocv] == [f.time for f in ref]
    assert [f.image.shape for f in ocv] == [f.image.shape for f in ref]


def test_images_folder_and_glob(tmp_path) -> None:
    import av

    from framesift.samples import render_frame

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        img = render_frame(i, 0, i, 160, 120)
        av.VideoFrame.from_ndarray(img, format="rgb24").save(str(folder / f"img_{i:03d}.png"))
    (folder / "notes.txt").write_text("not an image")
    (folder / "img_999.png").write_bytes(b"broken")
    src = build_source(ImagesSourceConfig(path=str(folder), fps=2))
    assert src.id == "imgs"
    src.open()
    frames = list(src.frames())
    src.close()
    assert barcodes(frames) == list(range(6))
    assert [f.time for f in frames] == [Fraction(i, 2) for i in range(6)]
    assert src.stats.decode_errors == 1
    sub = read_all(ImagesSourceConfig(path=str(folder / "img_00[0-3].png"), fps=4, target_fps=2, width=128))
    assert [read_barcode(f.image) for f in sub] == [0, 2]
    assert sub[0].image.shape == (96, 128, 3)


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_close_while_iterating_ends_cleanly(make_clip, decoder) -> None:
    import threading

    info = make_clip(segments=(50,), width=160, height=120)
    src = build_source(FileSourceConfig(path=str(info.path), decoder=decoder))
    src.open()
    n = 0
    for _ in src.frames():
        n += 1
        if n == 5:
            src.close()  # same thread, generator suspended
    assert n == 5
    src.open()  # reopening works
    n = 0
    for _ in src.frames():
        n += 1
        if n == 3:
            t = threading.Thread(target=src.close)
            t.start()
            t.join()
    assert n == 3


def test_full_size_colour_conversion_matches_swscale(make_clip, tmp_path) -> None:
    """4:2:0 BT.601 frames convert in one OpenCV call with swscale's colours (within 3 levels);
    frames flagged BT.709 or full range are left to swscale, which reads those flags."""
    import av

    from framesift.stream.scale import full_rgb

    info = make_clip(segments=(3,), width=160, height=120)
    with av.open(str(info.path)) as c:
        f = next(c.decode(video=0))
    for fmt in ("rgb24", "bgr24"):
        fast = full_rgb(f, fmt)
        assert fast is not None
        assert np.abs(fast.astype(int) - f.to_ndarray(format=fmt).astype(int)).max() <= 3
    assert full_rgb(f, "gray") is None
    src = read_all(FileSourceConfig(path=str(info.path)))[0].image  # the source takes this path,
    assert np.array_equal(src, full_rgb(f))  # always (never a timing race: the same run to run)
    assert np.abs(src.astype(int) - f.to_ndarray(format="rgb24").astype(int)).max() <= 3
    f.colorspace = 1  # BT.709
    assert full_rgb(f) is None
    f.colorspace, f.color_range = 2, 2  # unspecified, full range (JPEG)
    assert full_rgb(f) is None


def test_the_fast_scaler_averages_every_row_and_column(tmp_path) -> None:
    """``scaler: fast`` halves 4:2:0 planes (2x2 averages) while the result stays at least the size
    asked for: one-pixel stripes average to grey instead of aliasing into one of their colours
    (rows were sampled before), and odd multiples keep the largest power of two."""
    import av

    from framesift.stream.scale import fast_size, small_rgb

    assert fast_size(1280, 720, 256, 144) == (320, 180)
    assert fast_size(1366, 768, 256, 144) == (340, 192)
    assert fast_size(480, 270, 256, 144) == (480, 270)
    stripes = np.zeros((720, 1280, 3), np.uint8)
    stripes[::2] = 255  # white rows on black
    stripes[:, ::2] //= 2  # and every other column half as bright
    vf = av.VideoFrame.from_ndarray(stripes, format="rgb24").reformat(format="yuv420p")
    small = small_rgb(vf, 256, 144)
    assert small.shape == (180, 320, 3)
    full = vf.to_ndarray(format="rgb24").astype(float)
    want = full.reshape(180, 4, 320, 4, 3).mean(axis=(1, 3))
    assert np.abs(small.astype(float) - want).max() <= 4 and 60 < small.mean() < 130
