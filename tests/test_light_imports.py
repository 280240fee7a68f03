"""A pixel-only pipeline never imports torch (start-up time and ~500 MB of memory on small boxes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = """
import sys
from framesift.config import parse_config
from framesift.pipeline import Pipeline
cfg = parse_config({
    "sources": [{"type": "file", "path": sys.argv[1]}],
    "engine": {"model": "pixel"},
    "analyzers": [{"type": "scene_change"}, {"type": "collector"}],
    "metrics": {"enabled": False},
})
Pipeline(cfg).run()
heavy = sorted(m for m in ("torch", "open_clip", "onnxruntime", "ultralytics") if m in sys.modules)
print("HEAVY", heavy)
"""


def test_pixel_pipeline_does_not_import_torch(make_clip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = make_clip("c.mp4", segments=(10, 10), width=160, height=120)
    proc = subprocess.run(
        [sys.executable, "-c", CODE, str(clip.path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
