"""``scenes --split`` (re-encoding) on frame sizes H.264 in 4:2:0 cannot take as they are: odd sides
are cropped to even, a frame too small to encode gets one warning line and no per-scene files."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from framesift.cli import main
from framesift.stream.split import split_scenes

FPS, FRAMES = 25, 20


def _picture(width: int, height: int, k: int) -> np.ndarray:
    """Frame ``k``: a gradient with a moving bright bar, different in every row and column."""
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    gray = (x * 255 // max(1, width - 1) + y * 97 // max(1, height - 1)) % 256
    gray = np.where((x + 3 * k) % 40 < 6, 255, gray)
    return np.stack([gray, 255 - gray, (gray + 80) % 256], axis=-1).astype(np.uint8)


def _clip(path: Path, width: int, height: int, codec: str, pix_fmt: str) -> list[np.ndarray]:
    """``FRAMES`` frames of ``width`` x ``height`` written with ``codec`` in ``pix_fmt``; their
    pictures as gray, as the file decodes."""
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=FPS)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt  # type: ignore[attr-defined]
        for k in range(FRAMES):
            vf = av.VideoFrame.from_ndarray(_picture(width, height, k), format="rgb24")
            out.mux(v.encode(vf))  # type: ignore[attr-defined]
        out.mux(v.encode(None))  # type: ignore[attr-defined]
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray") for f in c.decode(video=0)]


def test_even_size_crops_the_odd_side() -> None:
    from framesift.stream.split import even_size  # the rule the annotated video sink uses too

    assert even_size(161, 91) == (160, 90)
    assert even_size(320, 180) == (320, 180)
    assert even_size(1, 1) == (0, 0)


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"),
    [("odd.mkv", "ffv1", "yuv420p"), ("odd444.mp4", "libx264", "yuv444p")],
)
def test_odd_frame_sizes_are_cropped_to_even(tmp_path: Path, name: str, codec: str, pix_fmt: str) -> None:
    """161x91 frames (4:2:0 and 4:4:4) were refused by libx264 (``avcodec_open2`` failed, a
    traceback); now the last column and row are cropped off, the rest of each picture kept."""
    source = _clip(tmp_path / name, 161, 91, codec, pix_fmt)
    files = split_scenes(tmp_path / name, [(0, 10), (10, FRAMES)], tmp_path / "split", "odd")
    assert [p.name for p in files] == ["odd-scene-001.mp4", "odd-scene-002.mp4"]
    got: list[np.ndarray] = []
    for p in files:
        with av.open(str(p)) as c:
            v = c.streams.video[0]
            assert (v.codec_context.name, v.width, v.height) == ("h264", 160, 90)
            got += [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(got) == FRAMES
    for a, b in zip(got, source, strict=True):  # cropped, not scaled: the pixels stay in place
        diff = np.abs(a.astype(np.int16) - b[:90, :160].astype(np.int16))
        assert float(diff.mean()) < 3.0
    assert not list((tmp_path / "split").glob("*.tmp.*"))


def test_a_frame_too_small_to_encode_is_one_warning_and_no_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A 1x1 video: nothing to encode once cropped to even. The run goes on (its scene list is
    written), one warning line names the file, and no per-scene file is left behind."""
    clip = tmp_path / "tiny.mkv"
    _clip(clip, 1, 1, "ffv1", "yuv444p")
    with caplog.at_level(logging.WARNING, logger="framesift.stream.split"):
        assert split_scenes(clip, [(0, FRAMES)], tmp_path / "direct", "tiny") == []
    assert "tiny.mkv: frames of 1x1 are too small to encode as H.264" in caplog.text
    capsys.readouterr()  # what the call above logged: the command's own lines are counted below
    out = tmp_path / "out"
    args = ["scenes", str(clip), "-o", str(out), "--split", "--no-html", "--no-progress"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if "too small to encode" in line]
    assert len(warnings) == 1 and "tiny.mkv" in warnings[0]
    assert (out / "tiny-Scenes.csv").is_file()
    assert not any(out.glob("tiny-split/*"))
