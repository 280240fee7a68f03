"""The README's offline demo runs end to end and finds the generated clip's cuts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_finds_the_true_cuts(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "demo", "-o", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    cuts = [e["frame_index"] for e in events if e["type"] == "scene_change"]
    assert cuts == [75, 175, 225]
    states = [e["state"] for e in events if e["type"] == "source_status"]
    assert "eof" in states
    assert "cuts found:    [75, 175, 225]" in proc.stdout
