"""``framesift demo``: the main job, offline, on a generated sample clip.

Generates a 12 s clip with three known hard cuts (first run only), runs it through a pipeline
(file source → weight-free scene-change analyzer → JSONL events) and compares the cuts found with
the true ones.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from framesift.cli.runner import run_pipeline
from framesift.config import parse_config
from framesift.pipeline import Pipeline
from framesift.samples import demo_clip


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the offline demo on a generated clip", description=__doc__)
    p.add_argument(
        "-o", "--out", "--output", default="framesift-demo", help="output directory (default: %(default)s)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clip = demo_clip(out)
    events_path = out / "events.jsonl"
    if events_path.exists():
        events_path.unlink()
    cfg = parse_config(
        {
            "sources": [{"type": "file", "id": "demo", "path": str(clip.path)}],
            "engine": {"model": "pixel"},
            "analyzers": [{"type": "scene_change"}],
            "sinks": [{"type": "jsonl", "path": str(events_path)}],
            "metrics": {"enabled": False},
        },
        where="demo",
    )
    run_pipeline(Pipeline(cfg), progress=not args.no_progress)
    cuts = []
    with events_path.open(encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            if event["type"] == "scene_change":
                cuts.append(event["frame_index"])
    print(f"clip:          {clip.path} ({clip.frames} frames, {clip.width}x{clip.height}, {clip.fps} fps)")
    print(f"true cuts:     {list(clip.cuts)}")
    print(f"cuts found:    {cuts}")
    print(f"events:        {events_path}")
    print("next, on the same clip:")
    print(
        f"  framesift scenes {clip.path} -o {out / 'scenes'}     # scene list, EDL, thumbnails, HTML report"
    )
    print(f"  FRAMESIFT_INPUT={clip.path} framesift run configs/file.yaml   # the same as a pipeline config")
    print(f"  framesift collect {clip.path} -o {out / 'collect'}   # keep the frames worth labelling")
    return 0
