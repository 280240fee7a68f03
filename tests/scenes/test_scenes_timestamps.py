"""Scene times come from frame timestamps (variable frame rate, irregular AVI timestamps), and a
corrupt packet is counted and skipped by every command, which goes on decoding."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import av
import pytest

from framesift.cli import main
from framesift.samples import write_clip, write_vfr_clip
from framesift.scenes import detect_scenes
from framesift.scenes.outputs import edl_timecode
from tests.stream.helpers import corrupt_middle, ffmpeg_count

TREE = Path("/usr/share/doc/opencv-doc/examples/data/tree.avi")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    return list(csv.DictReader(lines[1:]))  # line 1 is PySceneDetect's "Timecode List"


def test_variable_frame_rate_times_come_from_timestamps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = tmp_path / "vfr.mkv"
    frames, cut_time = write_vfr_clip(clip, spans=((25, 50), (10, 40)), cut=60)  # 2 s at 25 fps, then 10 fps
    assert cut_time == 3.0 and cut_time != 60 / 25  # index ÷ fps would say 2.4 s
    out = tmp_path / "out"
    assert main(["scenes", str(clip), "-o", str(out), "--no-progress", "-j", "1"]) == 0
    doc = json.loads((out / "vfr-scenes.json").read_text())
    assert doc["frames"] == frames and [e["frame_index"] for e in doc["events"]] == [60]
    assert doc["events"][0]["time"] == pytest.approx(3.0)
    assert [s["start_time"] for s in doc["scenes"]] == [0.0, 3.0]
    assert doc["scenes"][1]["end_time"] == pytest.approx(6.0)  # 2 s at 25 fps, then 40 frames at 10 fps
    rows = _csv_rows(out / "vfr-Scenes.csv")
    assert [r["Start Time (seconds)"] for r in rows] == ["0.000", "3.000"]
    assert rows[1]["Start Timecode"] == "00:00:03.000" and rows[1]["Start Frame"] == "61"
    edl = (out / "vfr.edl").read_text()
    with av.open(str(clip)) as c:
        nominal = Fraction(c.streams.video[0].average_rate or 25)
    assert f"{edl_timecode(3.0, nominal)} {edl_timecode(6.0, nominal)}" in edl
    html = (out / "vfr-scenes.html").read_text()
    assert "00:00:03.000" in html and "00:00:02.400" not in html
    assert "1 scene" not in capsys.readouterr().out  # "2 scenes"


@pytest.mark.skipif(not TREE.exists(), reason="Debian opencv-doc's tree.avi is not installed")
def test_tree_avi_csv_and_events_agree(tmp_path: Path) -> None:
    """tree.avi's 68 frames sit on 444 timestamp slots of 1/15 s (its first at 0): index ÷ fps puts
    its cuts far from their time; the scene list must say what the events say."""
    out = tmp_path / "o"
    assert main(["scenes", str(TREE), "-o", str(out), "--no-progress", "-j", "1"]) == 0
    doc = json.loads((out / "tree-scenes.json").read_text())
    assert doc["frames"] == 68 and doc["events"]
    for event, scene in zip(doc["events"], doc["scenes"][1:], strict=True):
        assert scene["start_frame"] == event["frame_index"]
        assert scene["start_time"] == pytest.approx(event["time"], abs=1e-3)
        assert abs(scene["start_time"] - event["frame_index"] / 15) > 1.0  # what index ÷ fps gave
    rows = _csv_rows(out / "tree-Scenes.csv")
    assert [float(r["Start Time (seconds)"]) for r in rows[1:]] == [
        round(e["time"], 3) for e in doc["events"]
    ]
    # its last frame starts at 443/15 s and lasts the shortest recent frame step (index ÷ fps: 4.5 s)
    assert 443 / 15 < doc["duration_s"] <= 443 / 15 + 0.5


def _corrupt_mjpeg(tmp_path: Path) -> Path:
    """A 200-frame MJPEG clip (one cut at 100) whose frame 100 has 400 zeroed bytes."""
    info = write_clip(tmp_path / "c.avi", segments=(100, 100), codec="mjpeg", width=192, height=144)
    with av.open(str(info.path)) as c:
        s = c.streams.video[0]
        pos = [p.pos for p in c.demux(s) if p.size][100]
    data = bytearray(info.path.read_bytes())
    data[pos + 600 : pos + 1000] = bytes(400)
    bad = tmp_path / "corrupt.avi"
    bad.write_bytes(bytes(data))
    return bad


def test_corrupt_packet_is_skipped_and_decoding_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _corrupt_mjpeg(tmp_path)
    sl = detect_scenes(bad)
    assert sl.frames >= 199  # not the 100 frames before the damage
    assert main(["scenes", str(bad), "-o", str(tmp_path / "s"), "--no-progress", "-j", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"in {sl.frames} frames" in printed
    out = tmp_path / "collect"
    assert main(["collect", str(bad), "-o", str(out), "--model", "pixel", "--no-progress"]) == 0
    assert "kept" in capsys.readouterr().err
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    eof = [e for e in events if e["type"] == "source_status" and e["state"] == "eof"]
    assert eof and eof[-1]["frames"] >= 199


def test_frame_numbers_after_a_corrupt_frame_are_ffmpegs(tmp_path: Path) -> None:
    """A damaged transport stream (a frame decoded as corrupt, skipped): the cut after the damage
    and the scene list's length are in FFmpeg's frame numbers, as the times are in its times."""
    info = write_clip(tmp_path / "c.ts", segments=(40, 40), width=160, height=120, gop=10)
    bad = corrupt_middle(info.path, tmp_path / "bad.ts", 0.2, 0.35)
    counted = ffmpeg_count(bad)
    with av.open(str(bad)) as c:
        s = c.streams.video[0]
        tb, t0 = s.time_base, s.start_time or 0
    # the second shot's first frame: 1.6 s in (the timestamps survive the damage; two packets did not)
    cut = counted[min(pts for pts in counted if (pts - t0) * tb >= Fraction(40, 25))]
    assert cut < 40
    sl = detect_scenes(bad)
    assert sl.scenes[-1].start == cut  # (the damaged frames may open a scene of their own)
    assert sl.frames == len(counted)
