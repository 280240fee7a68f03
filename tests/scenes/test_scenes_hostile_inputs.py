"""``framesift scenes`` on awkward inputs: extreme frame shapes, output paths that are files or
cannot be made, names holding glob characters, URLs. Each gives outputs or one clear line."""

from __future__ import annotations

import shutil
import sys
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest
from av.video.stream import VideoStream

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.cli import main
from framesift.samples import write_clip
from framesift.scenes.detect import scene_pipeline
from framesift.stream.factory import path_id


def _ffv1(path: Path, width: int, height: int, frames: int = 3) -> Path:
    """A short lossless clip of any size (H.264 encoders refuse the largest ones)."""
    with av.open(str(path), mode="w") as out:
        stream = cast(VideoStream, out.add_stream("ffv1", rate=Fraction(25)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):
            img = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("framesift: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("size", [(1920, 100), (4000, 16)], ids=["panorama", "strip"])
def test_very_wide_video_is_processed(
    tmp_path: Path, size: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    w, h = size
    clip = write_clip(tmp_path / "wide.mp4", segments=(10, 10), width=w, height=h)
    out = tmp_path / "out"
    assert main(["scenes", str(clip.path), "-o", str(out), "--no-progress"]) == 0
    assert (out / "wide-Scenes.csv").stat().st_size > 0
    assert "wide.mp4: " in capsys.readouterr().out


def test_very_tall_video_is_processed(tmp_path: Path) -> None:
    tall = _ffv1(tmp_path / "tall.mkv", 300, 20000)
    src = scene_pipeline([str(tall)], SceneChangeConfig()).sources[0]
    assert (src.width, src.height) == (246, 16384)
    out = tmp_path / "out"
    assert main(["scenes", str(tall), "-o", str(out), "--no-progress", "--no-html"]) == 0
    assert (out / "tall-Scenes.csv").stat().st_size > 0


def test_shot_only_analysis_of_a_wide_video_keeps_its_height_in_range(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "wide.mp4", segments=(4,), width=1920, height=400)
    cfg = SceneChangeConfig(mode="transnet")
    src = scene_pipeline([str(clip.path)], cfg, pictures=False).sources[0]
    assert (src.width, src.height) == (64, 16)


@pytest.mark.parametrize("where", ["afile", "afile/sub"])
def test_output_under_or_at_a_file_exit_2_one_line(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = write_clip(tmp_path / "a.mp4", segments=(4,), width=96, height=64)
    (tmp_path / "afile").write_text("x")
    target = tmp_path / where
    assert main(["scenes", str(clip.path), "-o", str(target), "--no-progress"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"framesift: error: -o {target}: ") and "not a folder" in line


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and /sys")
@pytest.mark.parametrize("where", ["/proc/framesift-out", "/sys/framesift-out"])
def test_output_that_cannot_be_created_exit_2_one_line(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = write_clip(tmp_path / "a.mp4", segments=(4,), width=96, height=64)
    assert main(["scenes", str(clip.path), "-o", where, "--no-progress"]) == 2
    assert _one_error_line(capsys).startswith(f"framesift: error: -o {where}: cannot create the folder")


def test_file_where_the_thumbnail_folder_goes_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = write_clip(tmp_path / "base.mp4", segments=(10, 10), width=96, height=64)
    out = tmp_path / "out"
    out.mkdir()
    (out / "base-thumbs").write_text("in the way")
    assert main(["scenes", str(clip.path), "-o", str(out), "--no-progress"]) == 1
    line = _one_error_line(capsys)
    assert f"{out / 'base-thumbs'}: cannot create the folder (a file of that name is in the way" in line


def test_file_names_with_glob_characters_are_taken_literally(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "base.mp4", segments=(10, 10), width=96, height=64)
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["clip[1].mp4", "star*.mp4", "what?.mp4"]
    for name in names:
        shutil.copy(clip.path, folder / name)
    out = tmp_path / "out"
    assert main(["scenes", *(str(folder / n) for n in names), "-o", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.edl")) == ["clip_1.edl", "star.edl", "what.edl"]
    assert not (out / "in.edl").exists()
    assert path_id(str(folder / "clip[1].mp4")) == "clip_1"
    assert path_id(str(folder / "*.jpg"), "images") == "in"  # a pattern: the folder it searches


def test_repeated_stems_numbered_with_worker_processes(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "base.mp4", segments=(10, 10), width=96, height=64)
    (tmp_path / "dup").mkdir()
    shutil.copy(clip.path, tmp_path / "dup" / "base.mp4")
    out = tmp_path / "out"
    videos = [str(clip.path), str(tmp_path / "dup" / "base.mp4")]
    assert main(["scenes", *videos, "-o", str(out), "-j", "2", "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("*.edl")) == ["base-2.edl", "base.edl"]


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://viewer:s3cret@127.0.0.1:1/none",
        "http://127.0.0.1:1/x.mp4",
        "https://example.invalid/live.m3u8",
    ],
)
def test_stream_url_points_to_the_live_commands(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scenes", url, "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert "framesift scenes reads video files" in line and "framesift run" in line
    assert "collect or detect" in line and "no such file" not in line and "s3cret" not in line
    assert not (tmp_path / "out").exists()
