"""The scene outputs read by the tools users feed them to: PySceneDetect reads the CSV back
(``load-scenes``) into the identical scene list, and OpenTimelineIO's CMX 3600 adapter reads the EDL
at film, PAL and NTSC rates (drop-frame at 29.97 and 59.94)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from framesift.cli import main
from framesift.samples import write_clip


def _scenes_rows(path: Path) -> list[list[str]]:
    rows = list(csv.reader(path.read_text().splitlines()))
    start = next(i for i, r in enumerate(rows) if r and r[0] == "Scene Number")
    return rows[start:]


@pytest.mark.parametrize("segments", [(40, 30, 25), (50,)], ids=["cuts", "no-cut"])
def test_scenedetect_load_scenes_reads_the_csv_back(tmp_path: Path, segments: tuple[int, ...]) -> None:
    scenedetect = shutil.which("scenedetect") or str(Path(sys.executable).with_name("scenedetect"))
    if not Path(scenedetect).exists():
        pytest.skip("PySceneDetect's command is not installed (pip install --no-deps scenedetect)")
    clip = write_clip(tmp_path / "v.mp4", segments=segments, width=192, height=144).path
    out = tmp_path / "ours"
    assert main(["scenes", str(clip), "-o", str(out), "--no-progress", "-j", "1", "--no-html"]) == 0
    ours = out / "v-Scenes.csv"
    back = tmp_path / "back"
    proc = subprocess.run(
        [scenedetect, "-i", str(clip), "-o", str(back), "load-scenes", "-i", str(ours), "list-scenes", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = next(back.glob("*.csv"))
    assert ours.read_text().splitlines()[0] == theirs.read_text().splitlines()[0]  # the cut list row
    assert _scenes_rows(ours) == _scenes_rows(theirs)
    assert len(_scenes_rows(ours)) == len(segments) + 1


@pytest.mark.parametrize(
    "fps",
    [Fraction(24), Fraction(25), Fraction(24000, 1001), Fraction(30000, 1001), Fraction(60000, 1001)],
    ids=["24", "25", "23.976", "29.97-df", "59.94-df"],
)
def test_opentimelineio_reads_the_edl(tmp_path: Path, fps: Fraction) -> None:
    otio = pytest.importorskip("opentimelineio")
    if "cmx_3600" not in otio.adapters.available_adapter_names():
        pytest.skip("OpenTimelineIO's CMX 3600 adapter is not installed (otio-cmx3600-adapter)")
    # long enough at 29.97 for drop-frame numbering to matter: past the first minute
    n = int(fps * 70)
    segments = (n // 2, n - n // 2)
    clip = write_clip(tmp_path / "v.mp4", segments=segments, fps=fps, width=96, height=64).path
    out = tmp_path / "o"
    assert (
        main(
            ["scenes", str(clip), "-o", str(out), "--no-progress", "-j", "1", "--no-html", "--no-thumbnails"]
        )
        == 0
    )
    edl = (out / "v.edl").read_text()
    drop = fps in (Fraction(30000, 1001), Fraction(60000, 1001))
    assert ("FCM: DROP FRAME" in edl) == drop
    timeline = otio.adapters.read_from_string(edl, "cmx_3600", rate=float(fps))
    clips = list(timeline.find_clips())
    scenes = json.loads((out / "v-scenes.json").read_text())["scenes"]
    assert len(clips) == len(scenes) >= 2
    frame = 1 / float(fps)
    for c, scene in zip(clips, scenes, strict=True):  # every event where the scene list says, ±1 frame
        assert c.source_range.start_time.to_seconds() == pytest.approx(scene["start_time"], abs=frame)
        assert c.source_range.end_time_exclusive().to_seconds() == pytest.approx(scene["end_time"], abs=frame)
    assert clips[-1].source_range.end_time_exclusive().to_seconds() == pytest.approx(
        n / float(fps), abs=frame
    )


def test_edl_at_a_rate_timecode_cannot_carry_says_so(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "v.mp4", segments=(20, 20), fps=10, width=96, height=64).path
    out = tmp_path / "o"
    assert main(["scenes", str(clip), "-o", str(out), "--no-progress", "-j", "1", "--no-html"]) == 0
    edl = (out / "v.edl").read_text()
    assert "* NOTE:" in edl and "10 fps" in edl and "SMPTE" in edl
