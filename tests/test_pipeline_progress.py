"""Console progress: frame totals for the file bar, periodic status lines for live sources."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from framesift.cli.runner import progress_for
from framesift.config import parse_config
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo
from framesift.stream.headers import expected_frames


def test_expected_frames_follows_window_and_target_fps(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip(segments=(50,))  # 2 s at 25 fps
    src = parse_config({"sources": [{"type": "file", "path": str(clip.path)}]}).sources[0]
    assert expected_frames(src) == 50
    sub = src.model_copy(update={"target_fps": 5.0, "end": 1.0})
    assert expected_frames(sub) == 5
    assert expected_frames(src.model_copy(update={"path": "/nonexistent.mp4"})) is None


def test_live_status_lines_are_printed_periodically() -> None:
    cfg = parse_config(
        {
            "sources": [
                {
                    "type": "rtsp",
                    "id": "cam",
                    "url": "rtsp://127.0.0.1:1/x",
                    "reconnect": {"initial_s": 0.2, "max_s": 0.2},
                }
            ],
            "metrics": {"enabled": False},
        }
    )
    out = io.StringIO()
    with Pipeline(cfg) as p:
        prog = progress_for(p, interval_s=0.1, stream=out)
        prog.start()
        deadline = time.monotonic() + 10
        while out.getvalue().count("\n") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        prog.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3
    assert all("cam " in line and "fps drops" in line for line in lines)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_file_progress_bar_reaches_the_total(make_clip: Callable[..., ClipInfo]) -> None:
    clip = make_clip(segments=(25,), width=160, height=120)
    cfg = parse_config(
        {
            "sources": [{"type": "file", "path": str(clip.path), "realtime": True}],
            "metrics": {"enabled": False},
        }
    )
    out = _Tty()
    with Pipeline(cfg) as p:
        prog = progress_for(p, stream=out)
        assert prog.files_only and prog.total == 25
        prog.start()
        p.join()
        prog.stop()
    assert "25/25" in out.getvalue()
