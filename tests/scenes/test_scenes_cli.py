"""``framesift scenes``: outputs per video, several videos at once, clear errors and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from framesift.cli import main
from framesift.samples import write_clip


def test_two_videos_processed_concurrently(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_clip(tmp_path / "a.mp4", segments=(20, 20), width=320, height=240)
    b = write_clip(tmp_path / "b.mp4", segments=(15, 15, 15), width=320, height=240, seed=3)
    out = tmp_path / "out"
    rc = main(["scenes", str(a.path), str(b.path), "-o", str(out), "-j", "2", "--no-progress"])
    assert rc == 0
    for stem in ("a", "b"):
        for name in (f"{stem}-Scenes.csv", f"{stem}-scenes.json", f"{stem}.edl", f"{stem}-scenes.html"):
            assert (out / name).stat().st_size > 0
    text = capsys.readouterr().out
    assert "a.mp4: 2 scenes" in text and "b.mp4: 3 scenes" in text


def test_single_video_with_split(tmp_path: Path) -> None:
    a = write_clip(tmp_path / "a.mp4", segments=(20, 20), width=320, height=240)
    assert main(["scenes", str(a.path), "-o", str(tmp_path / "o"), "--split", "--no-progress"]) == 0
    assert len(list((tmp_path / "o" / "a-split").glob("*.mp4"))) == 2


def test_missing_input_exit_3_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["scenes", str(tmp_path / "missing.mp4"), "-o", str(tmp_path)])
    assert rc == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.mp4: no such file" in err[0]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_broken_inputs_do_not_stop_the_others_and_each_is_named(tmp_path: Path, jobs: str) -> None:
    """Two good videos and two broken ones: the good ones' files are written and their lines
    printed, both broken ones are named, and the exit code is the input error's (3)."""
    import subprocess
    import sys

    good = [
        write_clip(tmp_path / f"g{i}.mp4", segments=(15, 15), width=160, height=120, seed=i).path
        for i in (1, 2)
    ]
    bad = [tmp_path / "junk1.mp4", tmp_path / "junk2.mp4"]
    for b in bad:
        b.write_text("not a video")
    out = tmp_path / "out"
    videos = [str(good[0]), str(bad[0]), str(good[1]), str(bad[1])]
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "scenes", *videos, "-o", str(out), "-j", jobs, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stderr
    for g in ("g1", "g2"):
        assert (out / f"{g}-Scenes.csv").stat().st_size > 0
        assert f"{g}.mp4: 2 scenes" in proc.stdout
    assert "junk1.mp4" in proc.stderr and "junk2.mp4" in proc.stderr and "Traceback" not in proc.stderr


def test_unreadable_input_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    assert main(["scenes", str(bad), "-o", str(tmp_path / "o"), "--no-progress"]) == 3
    assert "bad.mp4" in capsys.readouterr().err


def test_hybrid_and_labels_need_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_clip(tmp_path / "a.mp4", segments=(10,), width=320, height=240)
    assert main(["scenes", str(a.path), "--mode", "hybrid", "-o", str(tmp_path)]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["scenes", str(a.path), "--labels", "a cat", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--labels needs CLIP weights" in err and "or drop --labels" in err and "--mode pixel" not in err
    assert main(["scenes", str(a.path), "--mode", "hybrid", "--checkpoint", str(tmp_path / "x.pt")]) == 2


def test_out_of_range_option_exit_2_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_clip(tmp_path / "a.mp4", segments=(8,), width=96, height=64)
    assert main(["scenes", str(a.path), "--min-scene-len", "0", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["framesift: error: --min-scene-len: Input should be greater than or equal to 1 (got 0)"]
    assert main(["scenes", str(a.path), "--checkpoint", str(tmp_path / "w.pt"), "-o", str(tmp_path)]) == 2
    assert "--checkpoint applies with --mode clip or hybrid" in capsys.readouterr().err  # not ignored
