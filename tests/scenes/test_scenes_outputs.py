"""Outputs: CSV identical to PySceneDetect's writer, EDL events like its EDL, JSON, HTML, split."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import av
import pytest

from framesift.samples import write_clip
from framesift.scenes import SceneList, detect_scenes
from framesift.scenes.outputs import CSV_HEADER, split_video, write_all, write_csv, write_edl


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> SceneList:
    d = tmp_path_factory.mktemp("scenes")
    info = write_clip(d / "clip.mp4", segments=(30, 20, 25), width=160, height=120)
    return detect_scenes(info.path, thumbnails=True)


def _pyscenedetect_scene_list(sl: SceneList) -> list[tuple[object, object]]:
    from scenedetect import FrameTimecode

    fps = float(sl.fps)
    return [(FrameTimecode(s.start, fps), FrameTimecode(s.end, fps)) for s in sl.scenes]


def test_csv_is_what_pyscenedetect_writes(scenes: SceneList, tmp_path: Path) -> None:
    from scenedetect.output import write_scene_list

    ref = io.StringIO()
    psd = _pyscenedetect_scene_list(scenes)
    write_scene_list(ref, psd, include_cut_list=True, cut_list=[s for s, _ in psd[1:]])  # as its CLI does
    ours = write_csv(scenes, tmp_path / "s.csv").read_text()
    assert ours == ref.getvalue()
    rows = list(csv.reader(io.StringIO(ours)))
    assert rows[1] == CSV_HEADER
    assert [r[1] for r in rows[2:]] == ["1", "31", "51"]  # PySceneDetect's 1-based start frames


def test_csv_without_cut_list_is_plain_rfc4180(scenes: SceneList, tmp_path: Path) -> None:
    rows = list(csv.DictReader(write_csv(scenes, tmp_path / "s.csv", include_cut_list=False).open()))
    assert [int(r["Length (frames)"]) for r in rows] == [30, 20, 25]


def test_edl_events_match_pyscenedetect(scenes: SceneList, tmp_path: Path) -> None:
    from scenedetect.output import write_scene_list_edl

    ref = io.StringIO()
    write_scene_list_edl(ref, _pyscenedetect_scene_list(scenes))
    ref_events = [line for line in ref.getvalue().splitlines() if line[:3].isdigit()]
    ours = write_edl(scenes, tmp_path / "s.edl").read_text().splitlines()
    events = [line for line in ours if line[:3].isdigit()]
    assert [e.split() for e in events] == [e.split() for e in ref_events]
    assert ours[0].startswith("TITLE: ") and ours[1] == "FCM: NON-DROP FRAME"


def test_write_all(scenes: SceneList, tmp_path: Path) -> None:
    paths = write_all(scenes, tmp_path, split=True)
    data = json.loads(paths["json"].read_text())
    assert [s["start_frame"] for s in data["scenes"]] == [0, 30, 50]
    assert data["events"][0]["type"] == "scene_change" and data["scenes"][1]["transition"]["kind"] == "cut"
    thumbs = sorted(paths["thumbnails"].glob("*.jpg"))
    assert len(thumbs) == 3
    page = paths["html"].read_text()
    assert page.count("<svg") == 1 and page.count("data:image/jpeg;base64,") == 3
    assert "<polyline" in page and "Scene 3" in page
    assert not list(tmp_path.rglob("*.tmp*"))  # atomic writes leave nothing behind
    files = sorted(paths["split"].glob("*.mp4"))
    assert [f.name for f in files] == [f"clip-scene-{i:03d}.mp4" for i in (1, 2, 3)]
    counts = []
    for f in files:
        with av.open(str(f)) as c:
            counts.append(sum(1 for _ in c.decode(video=0)))
    assert counts == [30, 20, 25]


def test_split_first_frames_match_the_scene_starts(scenes: SceneList, tmp_path: Path) -> None:
    from framesift.samples import read_barcode

    files = split_video(scenes, tmp_path / "split")
    firsts = []
    for f in files:
        with av.open(str(f)) as c:
            frame = next(c.decode(video=0))
            firsts.append(read_barcode(frame.to_ndarray(format="rgb24")))
    assert firsts == [0, 30, 50]
