"""Rotated videos (a display matrix, as phones write) and EXIF-oriented photos come out upright, as
FFmpeg's command line and players show them: frames, 48x27 shot frames, header sizes, split files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from framesift.stream.headers import frame_size
from framesift.stream.orient import quarter_turns
from framesift.stream.probe import probe
from framesift.stream.scale import ShotScaler
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.images import ImagesSourceConfig
from framesift.stream.split import split_scenes
from tests.stream.helpers import read_all

W, H = 320, 180


def _picture(i: int) -> np.ndarray:
    """A landscape picture whose orientation shows: white top-left quarter, a moving green bar."""
    a = np.zeros((H, W, 3), np.uint8)
    a[: H // 2, : W // 2] = 255
    a[:, (i * 6) % W : (i * 6) % W + 10] = (0, 255, 0)
    return a


def _rotated_clip(path: Path, degrees: int, n: int = 20) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.set_display_rotation(degrees)
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(_picture(i), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def _coded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


@pytest.mark.parametrize(("degrees", "turns"), [(90, 1), (-90, 3), (180, 2), (0, 0)])
def test_rotated_video_frames_come_out_upright(tmp_path: Path, degrees: int, turns: int) -> None:
    clip = _rotated_clip(tmp_path / "r.mp4", degrees)
    frames = read_all(FileSourceConfig(path=str(clip)))
    coded = _coded(clip)
    assert len(frames) == len(coded) == 20
    for f, c in zip(frames, coded, strict=True):  # the source's own RGB conversion: a few levels off
        assert f.image.shape == np.rot90(c, turns).shape
        assert np.abs(f.image.astype(int) - np.rot90(c, turns)).mean() < 2
    shown = (H, W) if turns % 2 else (W, H)
    assert frame_size(str(clip)) == shown
    assert probe(str(clip))["rotation"] == turns * 90


def test_width_applies_to_the_shown_picture(tmp_path: Path) -> None:
    clip = _rotated_clip(tmp_path / "r.mp4", 90)
    [first] = read_all(FileSourceConfig(path=str(clip), width=90), limit=1)
    assert first.image.shape == (160, 90, 3)  # portrait, 90 wide, aspect kept
    [fixed] = read_all(FileSourceConfig(path=str(clip), width=90, height=160), limit=1)
    assert fixed.image.shape == (160, 90, 3)
    # turned, then scaled (not squashed): as the coded picture turned and resized
    ref = cv2.resize(np.rot90(_coded(clip)[0], 1), (90, 160), interpolation=cv2.INTER_AREA)
    assert np.abs(fixed.image.astype(int) - ref).mean() < 6


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command line")
def test_shot_frames_match_ffmpegs_command_line_on_a_rotated_video(tmp_path: Path) -> None:
    clip = _rotated_clip(tmp_path / "r.mp4", 90)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(clip), "-s", "48x27", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
        check=True,
        capture_output=True,
    ).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(-1, 27, 48, 3)
    scaler = ShotScaler()
    with av.open(str(clip)) as c:
        ours = np.stack([scaler(f, quarter_turns(f)) for f in c.decode(c.streams.video[0])])
    assert ours.shape == ref.shape
    assert np.array_equal(ours, ref)
    frames = read_all(FileSourceConfig(path=str(clip), shot_frames=True), limit=3)
    assert all(np.array_equal(f.meta["shot"], r) for f, r in zip(frames, ref, strict=False))


def test_exif_oriented_photo_is_read_upright(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    im = Image.fromarray(_picture(0))
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to show"
    im.save(folder / "a.jpg", exif=exif, quality=95)
    [frame] = read_all(ImagesSourceConfig(path=str(folder)))
    assert frame.image.shape == (W, H, 3)
    turned = np.rot90(_picture(0), -1)
    assert np.abs(frame.image.astype(int) - turned).mean() < 6


def test_split_files_keep_the_rotation(tmp_path: Path) -> None:
    clip = _rotated_clip(tmp_path / "r.mp4", 90)
    files = split_scenes(clip, [(0, 10), (10, 20)], tmp_path / "split", "r")
    assert len(files) == 2
    for p in files:
        with av.open(str(p)) as c:
            f = next(c.decode(c.streams.video[0]))
            assert (f.width, f.height, quarter_turns(f)) == (W, H, 1)


@pytest.mark.parametrize("degrees", [90, 0])
def test_full_pictures_behind_small_frames(tmp_path: Path, degrees: int) -> None:
    """``full_pictures``: the frame is the small analysis frame, and its Picture is exactly the frame
    a source without a size gives (upright), converted only when asked for; pickling converts it."""
    import pickle

    from framesift.frame import PICTURE_KEY, picture

    clip = _rotated_clip(tmp_path / "r.mp4", degrees, n=6)
    small = read_all(FileSourceConfig(path=str(clip), width=80, scaler="fast", full_pictures=True))
    full = read_all(FileSourceConfig(path=str(clip)))
    assert len(small) == len(full) == 6
    for s, f in zip(small, full, strict=True):
        assert s.image.shape[0] * s.image.shape[1] < f.image.shape[0] * f.image.shape[1]
        pic = s.meta[PICTURE_KEY]
        assert pic._image is None  # nothing converted yet
        assert np.array_equal(picture(s), f.image) and not picture(s).flags.writeable
        assert picture(s) is picture(s)  # converted once
        assert np.array_equal(pickle.loads(pickle.dumps(pic))(), f.image)
        assert picture(f) is f.image  # no Picture: the frame is the full picture
    # a source whose frames are full size attaches none
    shown_w = H if degrees % 180 else W
    [same] = read_all(FileSourceConfig(path=str(clip), width=shown_w, full_pictures=True), limit=1)
    assert PICTURE_KEY not in same.meta
