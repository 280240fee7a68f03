"""The event contract: one JSON Schema, generated from framesift/events.py, shipped in the package,
documented in docs/events.md, and valid for every event of every command."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pytest

from framesift import events as ev
from framesift.cli import main
from framesift.config import parse_config
from framesift.errors import ConfigError
from framesift.events import (
    EVENT_TYPES,
    NOT_WRITTEN,
    SCHEMA,
    SOURCE_ID_PATTERN,
    Doc,
    Event,
    FrameIndex,
    FramePayload,
    TimeBase,
)
from framesift.frame import Frame
from framesift.samples import write_clip
from framesift.schemas import events_schema, fields_markdown, render, shipped_events_schema
from tests.detect.conftest import IMGSZ, world_model  # noqa: F401 - fixture
from tests.schema_check import read_jsonl, validate_events, validators

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "events.md"
REGENERATE = "python -m framesift.schemas --docs docs/events.md"


# -- the schema is generated, shipped and valid -----------------------------------------------------------


def test_shipped_schema_is_what_the_generator_writes() -> None:
    assert shipped_events_schema() == render(events_schema()), (
        f"the shipped schema is stale: run {REGENERATE}"
    )


def test_schemas_are_valid_draft_2020_12() -> None:
    v = validators()  # check_schema on both
    for name in ("shipped", "strict"):
        schema = v[name].schema
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["properties"]["schema"] == {"const": SCHEMA}


def test_one_definition_per_registered_type() -> None:
    for strict in (False, True):
        schema = events_schema(strict=strict)
        refs = [r["$ref"].rsplit("/", 1)[-1] for r in schema["oneOf"]]
        assert refs == [*EVENT_TYPES, *([] if strict else ["other"])]
        for name, cls in EVENT_TYPES.items():
            d = schema["$defs"][name]
            assert d["properties"]["type"]["const"] == name == cls.type
            assert d["properties"]["schema"]["const"] == SCHEMA
            assert d["title"] == cls.__name__


def test_registry_is_every_event_class_of_the_events_module() -> None:
    classes = [
        c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, Event) and c is not Event
    ]
    assert sorted(c.__name__ for c in classes) == sorted(c.__name__ for c in EVENT_TYPES.values())
    assert {"source_status", "scene_change", "frame_kept", "track", "detections", "line_crossing",
            "zone_occupancy", "error"} <= set(EVENT_TYPES)  # fmt: skip
    assert ev.event_classes(["track", "error"]) == (ev.TrackEvent, ev.ErrorEvent)
    with pytest.raises(ValueError, match=r"unknown event type 'trak' \(allowed: source_status, scene_change"):
        ev.event_classes(["track", "trak"])


def test_no_event_type_is_defined_outside_events_py() -> None:
    names = {"Event", *(c.__name__ for c in EVENT_TYPES.values())}
    offenders = []
    for path in (ROOT / "framesift").rglob("*.py"):
        if path == ROOT / "framesift" / "events.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & names:
                    offenders.append(f"{path.relative_to(ROOT)}: class {node.name}")
    assert not offenders, offenders


# -- every event type round-trips ---------------------------------------------------------------------------


def _samples() -> dict[str, Event]:
    """A realistic instance of every event type, with the in-process objects producers attach."""
    import supervision as sv

    img = np.zeros((480, 640, 3), np.uint8)
    frame = Frame("dock", 4415, 397350, Fraction(1, 90000), 1764072002.0, img)
    masks = np.zeros((2, 480, 640), bool)
    masks[0, 100:150, 450:480] = True  # inside the first box
    det = sv.Detections(
        xyxy=np.array([[412.0, 88.5, 530.0, 391.0], [10.25, 20.0, 60.0, 90.0]], np.float32),
        confidence=np.array([0.71, 0.33], np.float32),
        class_id=np.array([0, 1]),
        tracker_id=np.array([17, 18]),
        mask=masks,
        data={"class_name": np.array(["person", "forklift"])},
    )
    common = {"source": "dock", "frame_index": 4415, "time": 4.415}
    samples: list[Event] = [
        ev.SourceStatus(
            source="10.0.0.7_stream1",
            state="reconnecting",
            detail="rtsp://admin:***@10.0.0.7/stream1: connection refused",
            attempt=3,
            delay_s=2.07,
            frames=1520,
        ),
        ev.SceneChange(
            source="clip",
            frame_index=175,
            pts=175,
            time_base=Fraction(1, 25),
            time=7.0,
            score=np.float32(0.83),
            kind="dissolve",
            scene_id=3,
            transition_start=170,
            transition_end=180,
            transition_start_time=6.8,
            transition_end_time=7.2,
            label="a beach",
            thumbnails=("thumbs/clip-0003-a.jpg", "thumbs/clip-0003-b.jpg"),
        ),
        ev.SceneSignal(
            source="clip",
            rows=((253, 10.12, 0.0123, 0.15), (254, 10.16, 0.4412, 0.15)),
            labels={175: "a beach"},
            final=True,
            frames=300,
            start_time=0.0,
            end_time=12.0,
            pictures={175: np.zeros((90, 160, 3), np.uint8)},
        ),
        ev.FrameKept(
            **common,
            pts=397350,
            time_base=Fraction(1, 90000),
            reason="novel+prompt",
            scores={"novelty": np.float64(0.41), "relevance": 0.27},
            id="dock-00004415-3f2a9c1e",
            path="dock/2026/00004415.jpg",
            payload=FramePayload(img, np.ones(512, np.float32), "pixel"),
        ),
        ev.TrackEvent(
            **common,
            track_id=17,
            phase="started",
            class_name="person",
            confidence=np.float32(0.71),
            box=(412.0, 88.5, 530.0, 391.0),
            crop="data:image/jpeg;base64,/9j/4AAQ",
        ),
        ev.FrameDetections(**common, pts=397350, time_base=Fraction(1, 90000), detections=det, frame=frame),
        ev.LineCrossing(
            **common, line="gate", direction="in", track_id=17, class_name="person", in_count=5, out_count=2
        ),
        ev.ZoneOccupancy(**common, zone="dock-door", count=2, classes={"person": 1, "forklift": 1}),
        ev.ErrorEvent(source="pipeline", stage="engine", message="CUDA out of memory", count=0),
        ev.SourceMoved(
            source="dock-3", from_node="6f1c0e9b", to_node="a93d7e5c", reason="node died", lost_events=3
        ),
    ]
    return {e.type: e for e in samples}


def test_every_event_type_has_a_realistic_sample() -> None:
    assert set(_samples()) == set(EVENT_TYPES), "add a realistic instance of the new event type to _samples()"


@pytest.mark.parametrize("name", list(EVENT_TYPES))
def test_every_event_type_round_trips_and_validates(name: str) -> None:
    event = _samples()[name]
    d = event.to_dict()
    assert list(d)[:4] == ["schema", "type", "source", "wallclock"] and d["type"] == name
    assert json.loads(json.dumps(d)) == d  # plain JSON: no numpy scalars, tuples or Fractions left
    validate_events([d], what=name)


def test_in_process_payloads_are_never_written() -> None:
    s = _samples()
    kept, dets = s["frame_kept"].to_dict(), s["detections"].to_dict()
    assert "payload" not in kept and "frame" not in dets
    assert dets["detections"][0] == {"box": [412.0, 88.5, 530.0, 391.0], "confidence": 0.71, "class_id": 0,
                                     "class_name": "person", "track_id": 17, "mask_area": 50 * 30}  # fmt: skip
    bare = ev.FrameKept(**{k: getattr(s["frame_kept"], k) for k in ("source", "wallclock", "frame_index", "pts",
                           "time_base", "time", "reason", "scores", "id", "path")})  # fmt: skip
    assert bare == s["frame_kept"] and bare.to_dict() == kept  # the payload is not part of the value


# -- the generator's mapping rules, and new event types -----------------------------------------------------


def test_field_types_map_to_json_schema() -> None:
    lax, strict = events_schema(), events_schema(strict=True)
    defs = lax["$defs"]
    sc, tr, st = defs["scene_change"]["properties"], defs["track"]["properties"], defs["source_status"]
    assert sc["source"] == {"$ref": "#/$defs/source_id"}
    assert defs["source_id"]["pattern"] == SOURCE_ID_PATTERN
    assert sc["time_base"]["$ref"] == "#/$defs/fraction" and defs["fraction"]["type"] == "string"
    assert sc["transition_start"]["type"] == ["integer", "null"]
    assert sc["thumbnails"]["type"] == "array" and sc["thumbnails"]["items"] == {"type": "string"}
    assert sc["kind"]["enum"] == ["cut", "dissolve", "fade"] and sc["kind"]["default"] == "cut"
    assert tr["box"]["prefixItems"] == [{"type": "number"}] * 4 and tr["box"]["items"] is False
    assert defs["frame_kept"]["properties"]["scores"]["additionalProperties"] == {"type": "number"}
    assert "payload" not in defs["frame_kept"]["properties"]
    assert defs["detections"]["properties"]["detections"]["items"] == {"$ref": "#/$defs/DetectionRow"}
    assert defs["DetectionRow"]["required"] == ["box"]
    # required: the envelope and the fields without a default; strict: every key, nothing else
    assert (
        st["required"] == ["schema", "type", "source", "wallclock", "state"]
        and "additionalProperties" not in st
    )
    sst = strict["$defs"]["source_status"]
    assert sst["required"] == list(sst["properties"]) and sst["additionalProperties"] is False


@dataclass(frozen=True, kw_only=True)
class SceneSignal(Event):
    """A per-frame scene signal (stands for an event type added later)."""

    type: ClassVar[str] = "scene_signal"
    frame_index: FrameIndex
    time_base: TimeBase
    values: Annotated[dict[str, float], Doc("named signal values")]
    peaks: Annotated[list[int], Doc("frames of the peaks")] = field(default_factory=list)
    mode: Annotated[Literal["fast", "exact"], Doc("how it was computed")] = "fast"
    note: Annotated[str | None, Doc("free text")] = None
    image: Annotated[Any, NOT_WRITTEN] = field(default=None, repr=False, compare=False)


def test_a_new_event_type_is_covered_without_hand_written_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    monkeypatch.setitem(EVENT_TYPES, "scene_signal", SceneSignal)
    schema = events_schema(strict=True)
    d = schema["$defs"]["scene_signal"]
    assert {"$ref": "#/$defs/scene_signal"} in schema["oneOf"]
    assert list(d["properties"]) == ["schema", "type", "source", "wallclock", "frame_index", "time_base", "values",
                                     "peaks", "mode", "note"]  # fmt: skip
    assert d["properties"]["mode"]["enum"] == ["fast", "exact"]
    assert d["properties"]["peaks"] == {"description": "frames of the peaks", "type": "array",
                                        "items": {"type": "integer"}, "default": []}  # fmt: skip
    event = SceneSignal(
        source="cam", frame_index=3, time_base=Fraction(1, 25), values={"d1": 0.2}, image=object()
    )
    jsonschema.Draft202012Validator(schema).validate(event.to_dict())
    bad = {**event.to_dict(), "mode": "slow"}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)
    assert (
        render(events_schema()) != shipped_events_schema()
    )  # the shipped-file test now fails until regenerated


def test_shipped_schema_accepts_later_additions_strict_does_not() -> None:
    v = validators()
    later = {"schema": SCHEMA, "type": "scene_signal", "source": "cam", "wallclock": 1.0, "values": {}}
    extra = {**_samples()["error"].to_dict(), "retry_in_s": 3}
    for event in (later, extra):
        assert v["shipped"].is_valid(event) and not v["strict"].is_valid(event)
    assert not v["shipped"].is_valid({**later, "source": "a b"})  # the envelope is still checked
    assert not v["shipped"].is_valid({**extra, "schema": "framesift.event/1"})


def test_generator_refuses_fields_it_cannot_describe(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass(frozen=True, kw_only=True)
    class Opaque(Event):
        type: ClassVar[str] = "opaque"
        blob: Annotated[Any, Doc("something")]

    @dataclass(frozen=True, kw_only=True)
    class Undescribed(Event):
        type: ClassVar[str] = "undescribed"
        count: int

    for cls, message in (
        (Opaque, r"Opaque\.blob: no JSON Schema"),
        (Undescribed, r"Undescribed\.count: describe"),
    ):
        monkeypatch.setitem(EVENT_TYPES, cls.type, cls)
        with pytest.raises(TypeError, match=message):
            events_schema()
        monkeypatch.delitem(EVENT_TYPES, cls.type)


def test_source_id_is_what_config_and_derived_ids_follow(tmp_path: Path) -> None:
    from framesift.config.sources import SourceSpec
    from framesift.stream.factory import source_id_for

    assert [getattr(m, "pattern", None) for m in SourceSpec.model_fields["id"].metadata] == [
        SOURCE_ID_PATTERN
    ]
    cfg = parse_config({"sources": [{"type": "file", "path": str(tmp_path / "my clip (1).mp4")},
                                    {"type": "rtsp", "url": "rtsp://u:p@10.0.0.7:554/live/ch 1"}]})  # fmt: skip
    ids = [source_id_for(s) for s in cfg.sources]
    assert all(re.match(SOURCE_ID_PATTERN, i) for i in ids), ids


# -- the command, the sink filter, the docs -------------------------------------------------------------------


def test_schema_command_prints_the_shipped_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "events"]) == 0
    assert capsys.readouterr().out == shipped_events_schema()
    assert main(["schema", "events", "--strict"]) == 0
    assert json.loads(capsys.readouterr().out) == events_schema(strict=True)
    for argv in (["schema"], ["schema", "sinks"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2


def test_sink_event_filter_names_are_checked_against_the_registry() -> None:
    def sinks(events: list[str]) -> dict[str, Any]:
        return {"sources": [{"type": "file", "path": "x.mp4"}],
                "sinks": [{"type": "jsonl", "path": "e.jsonl", "events": events}]}  # fmt: skip

    assert parse_config(sinks(["frame_kept", "source_status"])).sinks[0].events == [
        "frame_kept",
        "source_status",
    ]
    with pytest.raises(ConfigError) as exc:
        parse_config(sinks(["frame_kept", "scene_cut"]), where="cfg.yaml")
    assert str(exc.value) == (
        "cfg.yaml: sinks.0.events: unknown event type 'scene_cut' (allowed: " + ", ".join(EVENT_TYPES) + ")"
    )


def test_sink_worker_filters_by_class() -> None:
    from framesift.sinks.base import Sink, SinkWorker

    class Keep(Sink):
        def write(self, event: Event) -> None: ...

    worker = SinkWorker(Keep(), event_types=["frame_kept"])
    s = _samples()
    assert worker.submit(s["frame_kept"]) and not worker.submit(s["track"]) and worker.backlog == 1


def test_docs_field_reference_is_generated_from_the_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert fields_markdown() in text, f"docs/events.md's field reference is stale: run {REGENERATE}"
    assert f"the current version is **{ev.SCHEMA_VERSION}**" in text
    assert re.search(rf"^### Version {ev.SCHEMA_VERSION}$", text, re.M), (
        "say what changed in the Changes section"
    )
    assert "framesift schema events" in text and "framesift.event/1" not in text.split("## Changes")[0]


def test_docs_examples_validate() -> None:
    text = DOCS.read_text(encoding="utf-8")
    lines = [
        json.loads(line)
        for block in re.findall(r"```json\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.startswith("{")
    ]
    assert {e["type"] for e in lines} == set(EVENT_TYPES), "docs/events.md: one example per event type"
    validate_events(lines, what="docs/events.md")


# -- every event of every command validates -----------------------------------------------------------------


def framesift(*args: str) -> None:
    """Run a command as a user does (its own interpreter: no state shared with other tests)."""
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(
        tmp_path_factory.mktemp("clip") / "clip.mp4", segments=(20, 20, 15), width=160, height=120
    ).path


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    framesift("demo", "-o", str(out), "--no-progress")
    return read_jsonl(out / "events.jsonl")


def test_demo_events_validate(demo_events: list[dict[str, Any]]) -> None:
    validate_events(demo_events, what="demo events.jsonl")
    assert {"scene_change", "source_status"} <= {e["type"] for e in demo_events}


def test_run_events_validate(clip: Path, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    events = tmp_path / "events.jsonl"
    config.write_text(
        f"sources:\n  - {{type: file, id: dock, path: '{clip}'}}\nengine: {{model: pixel}}\n"
        "analyzers:\n  - {type: scene_change}\n  - {type: collector}\n"
        f"sinks:\n  - {{type: jsonl, path: '{events}'}}\nmetrics: {{enabled: false}}\n"
    )
    framesift("run", str(config), "--no-progress")
    written = read_jsonl(events)
    validate_events(written, what="run events.jsonl")
    assert {"scene_change", "frame_kept", "source_status"} <= {e["type"] for e in written}


def test_collect_events_validate(clip: Path, tmp_path: Path) -> None:
    framesift("collect", str(clip), "-o", str(tmp_path), "--model", "pixel", "--no-progress")
    written = read_jsonl(tmp_path / "events.jsonl")
    validate_events(written, what="collect events.jsonl")
    assert "frame_kept" in {e["type"] for e in written}


def test_scenes_events_validate(clip: Path, tmp_path: Path) -> None:
    framesift("scenes", str(clip), "-o", str(tmp_path), "--no-progress")
    written = json.loads((tmp_path / "clip-scenes.json").read_text())["events"]
    assert len(written) == 2
    validate_events(written, what="clip-scenes.json events")


def test_scene_id_is_the_scene_a_boundary_opens(demo_events: list[dict[str, Any]]) -> None:
    scene_ids = [e["scene_id"] for e in demo_events if e["type"] == "scene_change"]
    assert scene_ids == [2, 3, 4]  # the demo clip has 3 cuts: 4 scenes, the first without a boundary


def test_detect_events_validate(world_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    pytest.importorskip("open_clip")
    pytest.importorskip("trackers")
    from framesift.engines.cache import EngineCache
    from framesift.engines.models.yolo_world import YoloWorld

    cache = EngineCache(tmp_path / "engines")
    monkeypatch.setenv("FRAMESIFT_CACHE", str(cache.root))
    onnx = YoloWorld(world_model, imgsz=IMGSZ, cache=cache, device="cpu", runtime="onnxruntime").onnx_path
    clip = write_clip(tmp_path / "clip.mp4", segments=(14,), width=160, height=120).path
    out = tmp_path / "out"
    argv = ["detect", str(clip), "--model", str(onnx), "--imgsz", str(IMGSZ), "--clip-pretrained", "none",
            "--prompt", "person", "--prompt", "forklift", "--conf", "0.05", "--device", "cpu", "-o", str(out),
            "--per-frame", "--no-video", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    tracks, frames = read_jsonl(out / "detections.jsonl"), read_jsonl(out / "frames.jsonl")
    assert "track" in {e["type"] for e in tracks} and any(f["detections"] for f in frames)
    validate_events(tracks, what="detect detections.jsonl")
    validate_events(frames, what="detect frames.jsonl")
