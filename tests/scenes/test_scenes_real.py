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
