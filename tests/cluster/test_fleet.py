"""Fleets (``framesift run CONFIG --ray ADDRESS``) on a real two-node Ray cluster (127.0.0.1): live
sources (files replayed in real time, looping) spread over the head and the worker node, their events
in one JSONL file written by the driver, the control API listing each source with its node, and the
worker node killed: its source runs again on the head within 60 s and a ``source_moved`` event says so.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import REPO, Head, WorkerNode, _env, _free_port

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


def fleet_config(clip: str, address: str, out: Path, port: int, ids: tuple[str, ...]) -> dict[str, Any]:
    """Live sources replaying ``clip`` (scene cuts every 1-2 s), scene change, one JSONL sink."""
    src = {"type": "file", "path": clip, "realtime": True, "loop": True, "width": 64, "height": 48}
    return {
        "sources": [{**src, "id": sid} for sid in ids],
        "analyzers": [{"type": "scene_change", "mode": "pixel", "min_scene_len": 8}],
        "engine": {"model": "pixel"},
        "sinks": [{"type": "jsonl", "path": str(out / "events.jsonl")}],
        "metrics": {"port": port},
        "cluster": {"ray": address, "cpus_per_source": 0.25},
    }


def events(out: Path) -> list[dict[str, Any]]:
    path = out / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    tail = "" if log is None or not log.is_file() else f"\n{log.read_text()[-3000:]}"
    raise AssertionError(f"{what}: not within {timeout:.0f} s{tail}")


def http(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return dict(json.loads(resp.read()))


def nodes() -> tuple[str, str]:
    """(the head's node id, the worker node's)."""
    alive = [n for n in ray.nodes() if n["Alive"]]
    worker = next(n["NodeID"] for n in alive if n["Resources"].get("worker2"))
    head = next(n["NodeID"] for n in alive if n["NodeID"] != worker)
    return head, worker


@pytest.fixture
def clip(archive) -> str:  # type: ignore[no-untyped-def]
    return str(archive.short.path)


@pytest.fixture
def cli_fleet(
    clip: str, ray_head: Head, ray_worker: WorkerNode, tmp_path: Path
) -> Iterator[tuple[int, Path]]:
    """``framesift run CONFIG --ray HEAD`` in a subprocess (its own driver); SIGTERM at the end."""
    port = _free_port()
    cfg = fleet_config(clip, "local", tmp_path, port, ("cam0", "cam1"))  # --ray overrides cluster.ray
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
    cmd = [sys.executable, "-m", "framesift", "run", str(tmp_path / "fleet.yaml"), "--ray", ray_head.address]
    proc = subprocess.Popen(
        [*cmd, "--no-progress"], cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield port, tmp_path
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.mark.parametrize(
    ("change", "args", "words"),
    [
        ({"sources": [{"type": "file", "path": "x.mp4"}]}, [], "a fleet runs live sources"),
        ({"sinks": [{"type": "frame_store", "path": "store"}]}, [], "a fleet delivers events only"),
        ({}, ["--ray", "nonsense"], "--ray nonsense: not an address"),
        ({}, ["--ray", f"127.0.0.1:{_free_port()}"], "no Ray head answers there"),
    ],
)
def test_fleet_refuses_what_it_cannot_run_in_one_line(  # type: ignore[no-untyped-def]
    change: dict[str, Any], args: list[str], words: str, clip: str, tmp_path: Path, capsys
) -> None:
    from framesift.cli import main

    cfg = {**fleet_config(clip, "127.0.0.1:1", tmp_path, 0, ("a",)), **change}
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(cfg))
    # refused before Ray starts (these tests run before the cluster's: this process joins none yet)
    assert main(["run", str(tmp_path / "f.yaml"), "--no-progress", *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], lines


def test_outbox_is_bounded_and_ships_events_without_their_frames() -> None:
    import pickle
    from fractions import Fraction

    import numpy as np

    from framesift.cluster.source_actor import Outbox
    from framesift.events import FrameKept, FramePayload, SourceStatus

    box = Outbox(capacity=2)
    kept = FrameKept(
        source="a", frame_index=3, pts=3, time_base=Fraction(1, 25), time=0.12, reason="novel",
        payload=FramePayload(np.zeros((4, 4, 3), np.uint8)),
    )  # fmt: skip
    for ev in (kept, SourceStatus(source="a", state="up"), SourceStatus(source="a", state="stalled")):
        box.write(ev)
    assert (len(box), box.dropped) == (2, 1)  # the newest is dropped and counted
    taken = box.take(10)
    assert len(box) == 0 and [e.type for e in taken] == ["frame_kept", "source_status"]
    assert taken[0].payload is None and taken[0].to_dict() == kept.to_dict()  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(taken)) == taken


def test_fleet_over_two_nodes_one_sink_and_the_control_api(cli_fleet: tuple[int, Path], clip: str) -> None:
    port, out = cli_fleet
    head, worker = nodes()

    def listed() -> dict[str, Any] | None:
        try:
            doc = http(port, "GET", "/sources")["sources"]
        except OSError:
            return None
        return doc if len(doc) == 2 and all(s["node"] for s in doc.values()) else None

    sources = wait_for(listed, "GET /sources lists both sources with their nodes", log=out / "run.log")
    assert {s["node"] for s in sources.values()} == {head, worker}, sources  # one source per node
    # events of both nodes reach the driver's one sink
    cut = wait_for(
        lambda: {e["source"] for e in events(out) if e["type"] == "scene_change"} >= {"cam0", "cam1"},
        "scene changes of both sources in the driver's JSONL",
    )
    assert cut
    # add a source over HTTP: it runs on the cluster and its events reach the sink; then remove it
    src = {"type": "file", "id": "cam2", "path": clip, "realtime": True, "loop": True, "width": 64}
    created = http(port, "POST", "/sources", src)
    assert created["id"] == "cam2" and created["status"]["node"] in (head, worker)
    wait_for(
        lambda: any(e["source"] == "cam2" and e["type"] == "scene_change" for e in events(out)), "cam2 events"
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
        assert b'sink="outbox:cam2"' in resp.read()  # each node's outbox: backlog and drops
    removed = http(port, "DELETE", "/sources/cam2")
    assert removed["removed"] and removed["status"]["node"] in (head, worker)
    assert set(http(port, "GET", "/sources")["sources"]) == {"cam0", "cam1"}


def test_dead_node_sources_restart_on_the_head(  # type: ignore[no-untyped-def]
    clip: str, ray_head: Head, ray_worker: WorkerNode, tmp_path: Path, capsys
) -> None:
    from framesift.cli import main
    from framesift.cluster.fleet import Fleet
    from framesift.config import parse_config
    from framesift.events import SourceMoved
    from framesift.services import Services

    cfg = parse_config(fleet_config(clip, ray_head.address, tmp_path, 0, ("cam0", "cam1")), where="test")
    head, worker = nodes()
    fleet = Fleet(cfg, ray)
    fleet.start()
    services = Services(fleet, cfg.metrics)
    services.start()
    try:
        assert services.port is not None
        on = {sid: s.node for sid, s in fleet.status().sources.items()}
        assert sorted(on.values()) == sorted([head, worker]), on
        moved = next(sid for sid, node in on.items() if node == worker)
        wait_for(lambda: fleet.status().sources[moved].frames_staged > 0, "frames on the worker node")
        ray_worker.kill_all()
        t0 = time.monotonic()
        sources = wait_for(
            lambda: (s := fleet.status().sources)[moved].node == head and s[moved].frames_staged > 0 and s,
            "the worker's source running on the head",
        )
        assert time.monotonic() - t0 < 60
        assert sources[moved].state == "up"
        ev = [e for _, e in fleet.events.since(0) if isinstance(e, SourceMoved)]
        assert [(e.source, e.from_node, e.to_node) for e in ev] == [(moved, worker, head)]
        assert ev[0].lost_events >= 0 and "died" in ev[0].reason
        image = fleet.latest_image(moved)  # the UI's preview, shrunk on the node
        assert image is not None and image.shape[1] <= 320
        assert f"outbox:{moved}" in fleet.status().sinks
        listed = http(services.port, "GET", "/sources")["sources"]
        assert {sid: s["node"] for sid, s in listed.items()} == {"cam0": head, "cam1": head}
        capsys.readouterr()
        assert main(["sources", "list", "--url", f"http://127.0.0.1:{services.port}"]) == 0
        table = [line.split() for line in capsys.readouterr().out.splitlines()]
        assert table[0][-1] == "NODE" and [row[-1] for row in table[1:]] == [head, head], table
    finally:
        fleet.stop()
        services.stop()
    written = [e for e in events(tmp_path) if e["type"] == "source_moved"]
    assert [(e["source"], e["from_node"], e["to_node"]) for e in written] == [(moved, worker, head)]
