"""Credentials in source and sink URLs never reach logs, /metrics, /status, /sources or event files:
``framesift run`` as a subprocess with ``rtsp://user:s3cret@...`` sources (one live, one refused, one
added over the control API) and a webhook whose URL carries the same password; grep for it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.rtsp_server import RtspServer, free_port, gst_rtsp_available

pytestmark = pytest.mark.skipif(not gst_rtsp_available(), reason="gst-rtsp-server (python3-gi) not installed")

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret"


def test_password_never_leaks(tmp_path: Path) -> None:
    with RtspServer({"cam": "barcode:160x120@10", "cam2": "barcode:160x120@10"}) as srv:
        port = srv.port
        out = tmp_path / "events.jsonl"
        dead_hook = free_port()
        cfg = tmp_path / "secret.yaml"
        cfg.write_text(
            "sources:\n"
            f"  - {{type: rtsp, url: 'rtsp://user:{PASSWORD}@127.0.0.1:{port}/cam', read_timeout_s: 1}}\n"
            f"  - type: rtsp\n    url: 'rtsp://admin:{PASSWORD}@127.0.0.1:{free_port()}/x?token=abc'\n"
            "    open_timeout_s: 1\n    reconnect: {initial_s: 0.1, max_s: 0.3}\n"
            f"sinks:\n  - {{type: jsonl, path: '{out}'}}\n"
            f"  - {{type: webhook, url: 'http://hook:{PASSWORD}@127.0.0.1:{dead_hook}/in', max_retries: 1,"
            " retry_initial_s: 0.05, queue_size: 16}\n"
            "metrics: {port: 0}\n"
            "log: {level: debug, format: json}\n"
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("FRAMESIFT_CONTROL_TOKEN", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "framesift", "run", str(cfg), "--no-progress"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            lines: list[str] = []
            api = None
            deadline = time.monotonic() + 30
            while api is None:
                assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
                line = proc.stderr.readline()
                lines.append(line)
                m = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", line)
                if m:
                    api = m.group(1)
            with httpx.Client(base_url=api, timeout=10) as http:
                deadline = time.monotonic() + 30
                while True:
                    status = http.get("/status").json()
                    srcs = status["sources"]
                    live = [s for s in srcs.values() if s["state"] == "up" and s["frames_staged"] > 5]
                    dead = [s for s in srcs.values() if s["reconnects"] >= 2]
                    if live and dead:
                        break
                    assert time.monotonic() < deadline, status
                    time.sleep(0.1)
                r = http.post(
                    "/sources",
                    json={"type": "rtsp", "id": "added", "url": f"rtsp://u:{PASSWORD}@127.0.0.1:{port}/cam2"},
                )
                assert r.status_code == 201, r.text
                deadline = time.monotonic() + 20
                while http.get("/sources/added").json()["status"]["frames_staged"] < 3:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                bad = http.post(
                    "/sources", json={"type": "rtsp", "url": f"rtsp://u:{PASSWORD}@h/x", "colour": 1}
                )
                assert bad.status_code == 400
                documents = [
                    http.get("/metrics").text,
                    http.get("/status").text,
                    http.get("/sources").text,
                    bad.text,
                    http.delete("/sources/added").text,
                ]
            proc.send_signal(signal.SIGTERM)
            rest, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        stderr = "".join(lines) + err
        assert proc.returncode == 0, stderr[-3000:]
        events_text = out.read_text()
    # it did exercise the paths that print URLs
    assert "user:***@" in stderr or "user:***@" in events_text
    assert "reconnect" in stderr and "webhook" in stderr
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert len(logs) >= 10 and {"ts", "level", "logger", "msg"} <= set(logs[0])  # the config's log block
    assert any(
        e["state"] == "stopped" and e["source"] == "added" for e in map(json.loads, events_text.splitlines())
    )
    for name, text in [("stderr", stderr), ("stdout", rest), ("events", events_text)] + [
        (f"http[{i}]", d) for i, d in enumerate(documents)
    ]:
        assert PASSWORD not in text, f"password leaked in {name}"
        assert "token=abc" not in text, f"query token leaked in {name}"
