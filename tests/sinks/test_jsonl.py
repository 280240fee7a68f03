"""JSONL sink: whole lines, rotation by size, partial-line repair, disk errors as SinkError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framesift.errors import SinkError
from framesift.events import SCHEMA, ErrorEvent, SourceStatus
from framesift.sinks.jsonl import JsonlSink, JsonlSinkConfig


def lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_writes_one_object_per_line_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "out" / "events.jsonl"
    with JsonlSink.from_config(JsonlSinkConfig(path=str(path))) as sink:
        sink.write(SourceStatus(source="cam", state="up", detail="ünïcode"))
        assert len(lines(path)) == 1  # visible before close: nothing held in memory
        sink.write(ErrorEvent(source="cam", stage="engine", message="x"))
    with JsonlSink(path) as sink:
        sink.write(SourceStatus(source="cam", state="stopped"))
    got = lines(path)
    assert [e["type"] for e in got] == ["source_status", "error", "source_status"]
    assert got[0]["detail"] == "ünïcode" and got[0]["schema"] == SCHEMA


def test_rotation_keeps_n_files_and_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path, rotate_mb=2 / 1024, keep=2)  # 2 KiB
    sink.open()
    for i in range(200):
        sink.write(SourceStatus(source="cam", state="up", frames=i))
    sink.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    frames = []
    for name in ("events.jsonl.2", "events.jsonl.1", "events.jsonl"):
        p = tmp_path / name
        assert p.stat().st_size <= 2048
        frames += [e["frames"] for e in lines(p)]
    assert frames == list(range(200 - len(frames), 200))  # newest kept, in order, none torn
    assert sink.rotations >= 3


def test_partial_last_line_is_removed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n{"c": ')
    with JsonlSink(path) as sink:
        sink.write(SourceStatus(source="s", state="up"))
    got = lines(path)
    assert got[:2] == [{"a": 1}, {"b": 2}] and got[2]["state"] == "up"


def test_file_of_only_a_fragment_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"broken"' * 10000)
    with JsonlSink(path) as sink:
        sink.write(SourceStatus(source="s", state="up"))
    assert len(lines(path)) == 1


def test_disk_full_raises_transient_sink_error() -> None:
    sink = JsonlSink("/dev/full", rotate_mb=None, name="full")
    sink.open()
    try:
        with pytest.raises(SinkError, match="full") as ei:
            sink.write(SourceStatus(source="s", state="up"))
        assert ei.value.transient and ei.value.sink == "full"
    finally:
        sink.close()


def test_unopenable_path_raises_sink_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkError, match="cannot open"):
        JsonlSink(tmp_path / "file" / "events.jsonl").open()
