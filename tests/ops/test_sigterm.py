"""SIGTERM during heavy load: ``framesift run`` with several real-time files, scene-change events to a
JSONL sink and to a webhook whose receiver is slow. The drain finishes in time, every queued event is
delivered or dropped and counted, files are closed, every JSONL line parses, and no partial file is
left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from framesift.samples import ClipInfo
from tests.ops.helpers import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
SLOW_S = 0.25


class SlowReceiver:
    """A real HTTP server on 127.0.0.1 answering 200 after ``SLOW_S`` seconds."""

    def __init__(self) -> None:
        self.received = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(SLOW_S)
                with outer.lock:
                    outer.received += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1})

    def __enter__(self) -> SlowReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    with SlowReceiver() as r:
        yield r


def test_sigterm_under_load_drains_counts_and_leaves_no_partial_files(
    make_clip: Callable[..., ClipInfo], tmp_path: Path, receiver: SlowReceiver
) -> None:
    clip = make_clip(segments=(12,) * 10, width=160, height=120)  # a cut every 12 frames
    out = tmp_path / "out"
    cfg = tmp_path / "load.yaml"
    sources = "".join(
        f"  - {{type: file, id: f{i}, path: '{clip.path}', realtime: true, loop: true}}\n" for i in range(4)
    )
    cfg.write_text(
        f"sources:\n{sources}"
        "analyzers:\n  - {type: scene_change, mode: pixel, min_scene_len: 4}\n"
        "engine: {model: pixel}\n"
        f"sinks:\n  - {{type: jsonl, path: '{out}/events.jsonl', rotate_mb: 0.01, keep: 50}}\n"
        f"  - {{type: webhook, name: webhook, url: 'http://127.0.0.1:{receiver.port}/in', queue_size: 8}}\n"
        "metrics: {port: 0}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "framesift", "run", str(cfg), "--no-progress"],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        while receiver.received < 8:  # the webhook is backed up: its queue overflows
            assert proc.poll() is None and time.monotonic() < deadline, "pipeline did not get busy"
            time.sleep(0.1)
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        drain_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    assert drain_s < 25, f"drain took {drain_s:.1f} s"  # capture join + stage + sink drain timeouts

    # every queued event was written or dropped-and-counted (the final per-sink summary line)
    summary = dict(re.findall(r"sink (\w+): (\d+ events queued; .*)", err))
    assert set(summary) == {"jsonl", "webhook"}, err[-3000:]
    for name, line in summary.items():
        queued = int(line.split()[0])
        counts = {k: int(v) for k, v in re.findall(r"([\w:]+) (\d+)", line.split(";", 1)[1])}
        finished = counts.get("written", 0) + counts.get("failed", 0) + counts.get("dropped:shutdown", 0)
        assert finished == queued, (name, line)
    webhook = {k: int(v) for k, v in re.findall(r"([\w:]+) (\d+)", summary["webhook"].split(";", 1)[1])}
    assert webhook.get("dropped:queue_full", 0) > 0  # the slow receiver could not keep up: counted
    assert receiver.received >= webhook["written"]

    # files closed whole: every line of every (rotated) JSONL file parses; no temporary files
    files = sorted(out.iterdir())
    assert files and all(f.name.startswith("events.jsonl") for f in files), files
    assert not [f for f in out.rglob("*") if f.suffix in (".tmp", ".part") or f.name.startswith(".")]
    events = [e for f in files for e in read_jsonl(f)]
    assert sum(1 for e in events if e["type"] == "scene_change") > 10
    stopped = {e["source"] for e in events if e["type"] == "source_status" and e["state"] == "stopped"}
    assert stopped == {"f0", "f1", "f2", "f3"}
    assert len(events) == int(summary["jsonl"].split()[0])  # every queued event is in the files
