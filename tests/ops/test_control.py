"""Live control over HTTP: sources added and removed while the pipeline runs, removal flushes the
source's events before DELETE answers, bad configs are 400s with the message, tokens, bind rules."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from framesift.cli import main
from framesift.config import parse_config
from framesift.errors import ConfigError
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo
from framesift.services import Services
from tests.ops.helpers import EndMarker, read_jsonl, wait_for
from tests.serving import served


def _cfg(clip: Path, out: Path, **metrics: Any) -> Any:
    return parse_config(
        {
            "sources": [{"type": "file", "id": "a", "path": str(clip), "realtime": True, "loop": True}],
            "sinks": [{"type": "jsonl", "path": str(out)}],
            "metrics": {"port": 0, **metrics},
        }
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``main()`` configures the ``framesift`` logger on the captured stderr: put it back after."""
    logger = logging.getLogger("framesift")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.fixture
def clip(make_clip: Callable[..., ClipInfo]) -> Path:
    return make_clip(segments=(25,), width=160, height=120).path


def test_add_and_remove_sources_while_running(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAMESIFT_CONTROL_TOKEN", raising=False)
    out = tmp_path / "events.jsonl"
    marker = EndMarker()
    with (
        served(_cfg(clip, out), analyzers=[marker]) as (p, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
    ):
        wait_for(lambda: p.status().sources["a"].frames_staged >= 5, what="source a running")
        r = http.post(
            "/sources", json={"type": "file", "id": "b", "path": str(clip), "realtime": True, "loop": True}
        )
        assert r.status_code == 201, r.text
        assert r.json()["id"] == "b" and r.headers["location"] == "/sources/b"
        wait_for(lambda: p.status().sources["b"].frames_staged >= 10, what="source b running")
        assert set(http.get("/sources").json()["sources"]) == {"a", "b"}
        a_before = p.status().sources["a"].frames_staged

        r = http.delete("/sources/b")
        assert r.status_code == 200, r.text
        events = read_jsonl(out)  # read at once: DELETE answered only after the flush
        b_events = [e for e in events if e["source"] == "b"]
        assert any(e["type"] == "source_status" and e["state"] == "stopped" for e in b_events)
        end = [e for e in b_events if e["type"] == "error" and e["stage"] == "on_end"]
        assert len(end) == 1 and end[0]["count"] == marker.frames["b"] >= 10
        assert r.json()["status"]["state"] == "stopped"
        assert set(http.get("/sources").json()["sources"]) == {"a"}
        assert http.delete("/sources/b").status_code == 404

        # the other source never stopped
        wait_for(lambda: p.status().sources["a"].frames_staged > a_before + 5, what="source a goes on")
        assert not [e for e in read_jsonl(out) if e["source"] == "a" and e.get("state") == "stopped"]

        # bad configs: 400 with the one-line validation message; taken id: 409
        r = http.post("/sources", json={"type": "rtsp", "url": "http://not-rtsp/x"})
        assert r.status_code == 400
        msg = r.json()["error"]
        assert "\n" not in msg and "source: url" in msg and "rtsp" in msg
        r = http.post("/sources", json={"type": "webcam", "id": "z"})
        assert r.status_code == 400 and "unknown type 'webcam'" in r.json()["error"]
        r = http.post("/sources", content=b"{not json")
        assert r.status_code == 400 and "not JSON" in r.json()["error"]
        r = http.post("/sources", json={"type": "file", "id": "a", "path": str(clip)})
        assert r.status_code == 409 and "already in use" in r.json()["error"]

        # the source can be added back under the same id
        r = http.post("/sources", json={"type": "file", "id": "b", "path": str(clip), "realtime": True})
        assert r.status_code == 201, r.text
        wait_for(lambda: p.status().sources["b"].frames_staged >= 3, what="source b back")
    final = read_jsonl(out)
    assert [e["source"] for e in final if e["type"] == "error" and e["stage"] == "on_end"].count("b") == 2


def test_removing_the_last_source_keeps_the_pipeline_waiting(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    with served(_cfg(clip, out), analyzers=[EndMarker()]) as (p, port):
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: p.status().sources["a"].frames_staged >= 3)
        assert httpx.delete(f"{base}/sources/a", timeout=30).status_code == 200
        assert p.running and p.healthy() and p.status().sources == {}
        assert not p.join(timeout=0.5)  # nothing ended it
        r = httpx.post(f"{base}/sources", json={"type": "file", "id": "c", "path": str(clip)}, timeout=30)
        assert r.status_code == 201, r.text
        wait_for(lambda: p.status().sources["c"].frames_staged >= 25, what="the new source ran")
    ends = [e["source"] for e in read_jsonl(out) if e["type"] == "error"]
    assert ends == ["a", "c"]


def test_token_required_when_configured(clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMESIFT_CONTROL_TOKEN", "env-token-0123456789")
    with served(_cfg(clip, tmp_path / "e.jsonl")) as (p, port):
        base = f"http://127.0.0.1:{port}"
        r = httpx.get(f"{base}/sources", timeout=10)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        bad = {"Authorization": "Bearer wrong-token-000000"}
        assert httpx.get(f"{base}/sources", headers=bad, timeout=10).status_code == 401
        spec = {"type": "file", "id": "x", "path": str(clip)}
        assert httpx.post(f"{base}/sources", json=spec, timeout=10).status_code == 401
        assert "x" not in p.status().sources
        ok = {"Authorization": "Bearer env-token-0123456789"}
        assert httpx.get(f"{base}/sources", headers=ok, timeout=10).status_code == 200
        assert httpx.get(f"{base}/metrics", timeout=10).status_code == 200  # scraping needs no token
        status = httpx.get(f"{base}/status", timeout=10).text
        assert "env-token-0123456789" not in status


def test_non_loopback_bind_without_token_is_refused(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAMESIFT_CONTROL_TOKEN", raising=False)
    cfg = _cfg(clip, tmp_path / "e.jsonl", host="0.0.0.0")
    p = Pipeline(cfg)
    with pytest.raises(ConfigError, match=r"not a loopback address.*metrics\.token"):
        Services(p, cfg.metrics)
    assert not p.running
    # with a token, or with the control API off, it binds
    with served(_cfg(clip, tmp_path / "e.jsonl", host="0.0.0.0", token="a-long-token-42")) as (_, port):
        assert port
    with served(_cfg(clip, tmp_path / "e.jsonl", host="0.0.0.0", control=False)) as (_, port):
        r = httpx.get(f"http://127.0.0.1:{port}/sources", timeout=10)
        assert r.status_code == 404


def test_cli_sources_list_add_remove(
    restore_logging: None,
    clip: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FRAMESIFT_CONTROL_TOKEN", raising=False)
    out = tmp_path / "events.jsonl"
    with served(_cfg(clip, out, token="cli-token-123456"), analyzers=[EndMarker()]) as (p, port):
        api = f"http://127.0.0.1:{port}"
        auth = ["--url", api, "--token", "cli-token-123456"]
        assert main(["sources", "list", *auth]) == 0
        assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["a", "file"]
        assert main(["sources", "list", "--url", api]) == 2  # no token
        assert "--token" in capsys.readouterr().err
        snippet = f"{{type: file, id: cli1, path: '{clip}', realtime: true, loop: true}}"
        assert main(["sources", "add", snippet, *auth]) == 0
        assert "added cli1" in capsys.readouterr().out
        spec = tmp_path / "src.json"
        spec.write_text(json.dumps({"id": "cli2", "realtime": True}))
        assert main(["sources", "add", str(spec), "--type", "file", "--path", str(clip), *auth]) == 0
        assert "added cli2" in capsys.readouterr().out
        assert main(["sources", "add", "{type: rtsp, url: 'ftp://x'}", *auth]) == 2
        assert "source: url" in capsys.readouterr().err
        rtsp = ["--type", "rtsp", "--url", "rtsp://127.0.0.1:1/none", "--id", "r1"]
        assert main(["sources", "add", "--url", api, *rtsp, "--token", "cli-token-123456"]) == 0
        assert "added r1 (rtsp" in capsys.readouterr().out
        assert main(["sources", "remove", "r1", *auth]) == 0  # a source that never connected
        capsys.readouterr()
        wait_for(lambda: p.status().sources["cli1"].frames_staged >= 3)
        assert main(["sources", "remove", "cli1", *auth]) == 0
        assert "removed cli1" in capsys.readouterr().out
        assert main(["sources", "list", "--json", *auth]) == 0
        assert set(json.loads(capsys.readouterr().out)["sources"]) == {"a", "cli2"}
        assert main(["sources", "remove", "nope", *auth]) == 1
    assert main(["sources", "list", "--url", api]) == 1  # pipeline gone: clear error
    assert "cannot reach the pipeline" in capsys.readouterr().err
