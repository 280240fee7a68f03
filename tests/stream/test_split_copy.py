"""``scenes --split --copy``: per-scene files cut at keyframes, the packets copied (no re-encoding)."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from framesift.cli import main
from framesift.stream.split_copy import CannotCopy, copy_split, keyframe_cuts

FPS, GOP, FRAMES, RATE = 25, 12, 96, 48_000


def _clip(path: Path, codec: str = "libx264", audio: bool = True) -> Path:
    """``FRAMES`` frames, each its own noise pattern (every frame differs), a keyframe every ``GOP``
    frames, and a stereo tone when ``audio``."""
    rng = np.random.default_rng(5)
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=FPS)
        v.width, v.height, v.pix_fmt = 160, 96, "yuv420p"  # type: ignore[attr-defined]
        v.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0"} if codec == "libx264" else {}
        v.codec_context.gop_size = GOP  # type: ignore[attr-defined]
        a = out.add_stream("aac", rate=RATE, layout="stereo") if audio else None
        for _ in range(FRAMES):
            img = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))  # type: ignore[attr-defined]
        out.mux(v.encode(None))  # type: ignore[attr-defined]
        if a is not None:
            t = np.arange(FRAMES * RATE // FPS) / RATE
            tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
            for k in range(0, len(tone), 1024):
                chunk = np.ascontiguousarray(np.stack([tone[k : k + 1024]] * 2))
                f = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                f.sample_rate, f.pts, f.time_base = RATE, k, Fraction(1, RATE)
                out.mux(a.encode(f))
            out.mux(a.encode(None))
    return path


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def test_files_start_on_keyframes_and_hold_the_source_frames_unchanged(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "in.mp4")
    source = _frames(clip)
    starts = [0, 30, 40, 72]  # keyframes at 0, 12, 24, ...: the cuts fall on 0, 24, 36 and 72
    files = copy_split(clip, starts, tmp_path / "split", "in")
    assert [p.name for p in files] == [f"in-scene-{k:03d}.mp4" for k in (1, 2, 3, 4)]
    got = [_frames(p) for p in files]
    assert [len(g) for g in got] == [24, 12, 36, 24]
    at = 0
    for g in got:  # decoded pixels equal the source's: nothing was re-encoded
        for k, img in enumerate(g):
            assert np.array_equal(img, source[at + k])
        at += len(g)
    for p in files:
        with av.open(str(p)) as c:
            assert c.streams.video[0].codec_context.name == "h264"
            assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
            v, a = c.streams.video[0], c.streams.audio[0]
            assert v.duration is not None and a.duration is not None
            assert float(a.duration * a.time_base) == pytest.approx(float(v.duration * v.time_base), abs=0.1)


def test_scenes_within_one_keyframe_interval_share_a_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = _clip(tmp_path / "in.mp4", audio=False)
    assert [scenes for _, scenes in keyframe_cuts(clip, [0, 26, 30, 50])] == [[0], [1, 2], [3]]
    with caplog.at_level(logging.INFO, logger="framesift.stream.split_copy"):
        files = copy_split(clip, [0, 26, 30, 50], tmp_path / "split", "in")
    assert [p.name for p in files] == ["in-scene-001.mp4", "in-scene-002.mp4", "in-scene-004.mp4"]
    assert "scenes 2-3 lie in one keyframe interval" in caplog.text
    assert sum(len(_frames(p)) for p in files) == FRAMES


def test_a_container_that_cannot_hold_the_copy_becomes_matroska(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "in.avi", codec="mpeg4", audio=False)
    files = copy_split(clip, [0, 48], tmp_path / "split", "in")
    assert [p.suffix for p in files] == [".mkv", ".mkv"]
    assert sum(len(_frames(p)) for p in files) == FRAMES


def test_scenes_cli_split_copy_and_its_one_line_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = _clip(tmp_path / "in.mp4")
    out = tmp_path / "out"
    assert main(["scenes", str(clip), "-o", str(out), "--split", "--copy", "--no-html", "--no-progress"]) == 0
    split = sorted((out / "in-split").iterdir())
    assert split and all(p.suffix == ".mp4" for p in split)
    assert sum(len(_frames(p)) for p in split) == FRAMES
    assert main(["scenes", str(clip), "-o", str(out), "--copy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("--copy: only with --split (it says how the per-scene files are cut)")


def test_a_raw_stream_is_re_encoded_instead_with_its_frames_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A raw H.264 stream has no timestamps to cut at: the split re-encodes, one line says so, and
    the files are timed at the stream's rate (they were all stamped 0 and lasted one frame)."""
    clip = _clip(tmp_path / "in.h264", audio=False)
    with pytest.raises(CannotCopy):
        keyframe_cuts(clip, [0, 48])
    out = tmp_path / "out"
    args = ["scenes", str(clip), "-o", str(out), "--split", "--copy", "--no-html", "--no-progress"]
    assert main(args) == 0
    assert "re-encoding the scenes instead" in capsys.readouterr().err
    files = sorted((out / "in-split").iterdir())
    assert sum(len(_frames(p)) for p in files) == FRAMES
    for p in files:
        with av.open(str(p)) as c:
            n = sum(1 for pkt in c.demux(video=0) if pkt.size)
            assert float(c.duration or 0) / 1e6 == pytest.approx(n / FPS, abs=0.1)


def _gif(path: Path) -> Path:
    """An animated GIF: a codec Matroska cannot hold."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as out:
        v = out.add_stream("gif", rate=10)
        v.width, v.height, v.pix_fmt = 80, 48, "rgb8"  # type: ignore[attr-defined]
        for _ in range(20):
            img = rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))  # type: ignore[attr-defined]
        out.mux(v.encode(None))  # type: ignore[attr-defined]
    return path


def _png(path: Path) -> Path:
    """One PNG picture (image2): a codec Matroska cannot hold."""
    with av.open(str(path), "w", format="image2") as out:
        v = out.add_stream("png", rate=1)
        v.width, v.height, v.pix_fmt = 64, 32, "rgb24"  # type: ignore[attr-defined]
        img = np.random.default_rng(8).integers(0, 255, (32, 64, 3), dtype=np.uint8)
        out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))  # type: ignore[attr-defined]
        out.mux(v.encode(None))  # type: ignore[attr-defined]
    return path


def _rgba_avi(path: Path) -> Path:
    """Raw RGBA video in AVI: Matroska takes the codec but its muxer refuses these packets."""
    rng = np.random.default_rng(9)
    with av.open(str(path), "w") as out:
        v = out.add_stream("rawvideo", rate=FPS)
        v.width, v.height, v.pix_fmt = 64, 32, "rgba"  # type: ignore[attr-defined]
        for _ in range(FRAMES):
            img = rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))  # type: ignore[attr-defined]
        out.mux(v.encode(None))  # type: ignore[attr-defined]
    return path


def _backwards_ts(path: Path) -> Path:
    """Two MPEG-TS segments joined byte for byte (``cat a.ts b.ts``): both start at pts 1.4 s, so the
    timestamps go back to the start halfway through."""
    data = b""
    for seed in (1, 2):
        seg = path.with_name(f"seg{seed}.ts")
        rng = np.random.default_rng(seed)
        with av.open(str(seg), "w") as out:
            v = out.add_stream("libx264", rate=FPS)
            v.width, v.height, v.pix_fmt = 160, 96, "yuv420p"  # type: ignore[attr-defined]
            v.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0"}
            for _ in range(FRAMES // 2):
                img = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
                out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))  # type: ignore[attr-defined]
            out.mux(v.encode(None))  # type: ignore[attr-defined]
        data += seg.read_bytes()
        seg.unlink()
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "name", "frames", "starts", "why"),
    [
        (_gif, "anim.gif", 20, [0, 10], "Matroska cannot hold its gif video"),
        (_png, "single.png", 1, [0], "Matroska cannot hold its png video"),
        (_rgba_avi, "rgba.avi", FRAMES, [0, 48], "Matroska refuses its rawvideo video packets"),
        # the second file is finished before the timestamps turn back: it is removed too
        (_backwards_ts, "backwards.ts", FRAMES, [0, 24, 48], "timestamps go back from"),
    ],
)
def test_a_video_that_cannot_be_copied_is_re_encoded_with_one_warning(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Any,
    name: str,
    frames: int,
    starts: list[int],
    why: str,
) -> None:
    """These raised out of the copy (a traceback, the whole run exit 1); now the scenes are
    re-encoded as ``--split`` does, one warning says why, and no copy or ``.tmp`` file is left."""
    clip = make(tmp_path / name)
    folder = tmp_path / "split"
    with caplog.at_level(logging.WARNING, logger="framesift.stream.split_copy"):
        files = copy_split(clip, starts, folder, "v")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{name}: ") and why in warnings[0]
    assert "re-encoding the scenes instead" in warnings[0]
    assert files and all(p.suffix == ".mp4" for p in files)
    assert sorted(folder.iterdir()) == sorted(files)  # no copies, no half-written .tmp files
    assert sum(len(_frames(p)) for p in files) == frames


def test_scenes_cli_split_copy_of_a_gif_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI: exit 0, one warning line naming the file, no traceback."""
    clip = _gif(tmp_path / "anim.gif")
    out = tmp_path / "out"
    args = ["scenes", str(clip), "-o", str(out), "--split", "--copy", "--no-html", "--no-progress"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" not in err
    assert len([line for line in err.splitlines() if "anim.gif: Matroska cannot hold" in line]) == 1
    split = list((out / "anim-split").iterdir())
    assert split and all(p.suffix == ".mp4" for p in split)


def test_a_matroska_file_with_b_frames_is_copied_not_re_encoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Matroska stores no dts: its first B-frame packets come without one. They are no sign of
    timestamps going backwards (the copy is kept, no warning)."""
    clip = _clip(tmp_path / "in.mkv", audio=False)
    with caplog.at_level(logging.WARNING, logger="framesift.stream.split_copy"):
        files = copy_split(clip, [0, 48], tmp_path / "split", "in")
    assert not caplog.records
    assert [p.suffix for p in files] == [".mkv", ".mkv"]
    assert sum(len(_frames(p)) for p in files) == FRAMES


def test_av1_read_by_libdav1d_is_copied(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """AV1 is decoded by libdav1d, a name no encoder has: the stream was refused (a ValueError out of
    the copy). Its codec is AV1, which Matroska holds: the packets are copied."""
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this FFmpeg has no AV1 encoder (libsvtav1) to make the test clip")
    clip = _clip(tmp_path / "in.mkv", codec="libsvtav1", audio=False)
    source = _frames(clip)
    with caplog.at_level(logging.WARNING, logger="framesift.stream.split_copy"):
        files = copy_split(clip, [0], tmp_path / "split", "in")
    assert not caplog.records
    assert [p.name for p in files] == ["in-scene-001.mkv"]
    with av.open(str(files[0])) as c:
        assert c.streams.video[0].codec.canonical_name == "av1"
    got = _frames(files[0])
    assert len(got) == len(source) and all(np.array_equal(a, b) for a, b in zip(got, source, strict=True))
