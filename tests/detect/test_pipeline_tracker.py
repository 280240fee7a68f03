"""The tracker analyzer and the detections/video sinks run from a pipeline config, end to end."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import pytest

from framesift.config import parse_config
from framesift.engines.cache import EngineCache
from framesift.pipeline import Pipeline
from tests.detect.conftest import IMGSZ

pytest.importorskip("ultralytics")
pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def onnx_model(world_model, engine_cache: EngineCache) -> str:  # type: ignore[no-untyped-def]
    from framesift.engines.models.yolo_world import YoloWorld

    return str(
        YoloWorld(world_model, imgsz=IMGSZ, cache=engine_cache, device="cpu", runtime="onnxruntime").onnx_path
    )


def test_tracker_pipeline_writes_track_events_and_annotated_video(
    make_clip, onnx_model: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    clip = make_clip("cam.mp4", segments=(12,), width=160, height=120, fps=Fraction(25))
    cfg = parse_config(
        {
            "sources": [{"type": "file", "id": "cam", "path": str(clip.path)}],
            "engine": {"model": "pixel"},
            "analyzers": [
                {
                    "type": "tracker",
                    "detector": {
                        "model": onnx_model,
                        "prompts": ["person", "forklift"],
                        "imgsz": IMGSZ,
                        "conf": 0.05,
                        "device": "cpu",
                        "clip_pretrained": None,
                    },
                    "per_frame_events": True,
                }
            ],
            "sinks": [
                {"type": "detections", "path": str(tmp_path / "tracks.jsonl")},
                {"type": "video", "path": str(tmp_path / "{source}.mp4")},
            ],
            "metrics": {"enabled": False},
        }
    )
    Pipeline(cfg).run()
    events = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    tracks = [e for e in events if e["type"] == "track"]
    started = {e["track_id"] for e in tracks if e["phase"] == "started"}
    ended = {e["track_id"] for e in tracks if e["phase"] == "ended"}
    assert started and started == ended  # one start and one end per track, none left open
    assert {e["class_name"] for e in tracks} <= {"person", "forklift"}
    with av.open(str(tmp_path / "cam.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == clip.frames
