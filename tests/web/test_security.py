"""The HTTP surface under hostile input: cross-site requests, DNS rebinding, tokens, limits, client
aborts, redaction cost, path-like ids, bad URLs and webhook secrets. Real servers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from framesift.cli import main
from framesift.config import parse_config
from framesift.errors import ConfigError
from framesift.log import redact, setup_logging
from framesift.pipeline import Pipeline
from framesift.samples import ClipInfo
from framesift.services import Services
from tests.ops.helpers import wait_for
from tests.serving import served


@pytest.fixture
def clip(make_clip: Callable[..., ClipInfo]) -> Path:
    return make_clip(segments=(25,), width=160, height=120).path


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAMESIFT_CONTROL_TOKEN", raising=False)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("framesift")
    root = logging.getLogger()
    saved = (list(logger.handlers), logger.propagate, logger.level, list(root.handlers), root.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]
    root.handlers[:] = saved[3]
    root.setLevel(saved[4])


def _cfg(clip: Path, sinks: list[dict[str, Any]] | None = None, **metrics: Any) -> Any:
    return parse_config(
        {
            "sources": [{"type": "file", "id": "a", "path": str(clip), "realtime": True, "loop": True}],
            "sinks": sinks or [],
            "metrics": {"port": 0, **metrics},
        }
    )


def _spec(clip: Path, sid: str) -> dict[str, Any]:
    return {"type": "file", "id": sid, "path": str(clip), "realtime": True}


@pytest.mark.parametrize("token", [None, "a-long-token-42"])
def test_cross_site_requests_are_refused(clip: Path, token: str | None) -> None:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with served(_cfg(clip, token=token)) as (p, port):
        url = f"http://127.0.0.1:{port}/sources"
        body = json.dumps(_spec(clip, "evil")).encode()
        # the attack of the report: foreign Origin and Host, a body type forms can send
        foreign = {"Origin": "http://evil.example", "Host": "evil.example", "Content-Type": "text/plain"}
        assert httpx.post(url, content=body, headers={**foreign, **auth}, timeout=10).status_code == 421
        # a page on another origin, sent to our host
        other = {"Origin": "http://evil.example", "Content-Type": "application/json", **auth}
        assert httpx.post(url, content=body, headers=other, timeout=10).status_code == 403
        same_site = {"Origin": f"http://127.0.0.1:{port + 1}", "Content-Type": "application/json", **auth}
        assert httpx.post(url, content=body, headers=same_site, timeout=10).status_code == 403
        # a form's body type, even from no origin
        plain = {"Content-Type": "text/plain", **auth}
        assert httpx.post(url, content=body, headers=plain, timeout=10).status_code == 415
        fetch_meta = {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json", **auth}
        assert httpx.post(url, content=body, headers=fetch_meta, timeout=10).status_code == 403
        assert (
            httpx.delete(
                f"{url}/a", headers={"Origin": "http://evil.example", **auth}, timeout=10
            ).status_code
            == 403
        )
        assert set(p.status().sources) == {"a"}
        # the same request from the UI's own origin is served
        own = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json", **auth}
        r = httpx.post(url, content=body, headers=own, timeout=10)
        assert r.status_code == 201, r.text


def test_dns_rebinding_host_allow_list(clip: Path) -> None:
    with served(_cfg(clip, allowed_hosts=["cam-box.lan"])) as (_, port):
        base = f"http://127.0.0.1:{port}"
        assert (
            httpx.get(f"{base}/status", headers={"Host": "attacker.example"}, timeout=10).status_code == 421
        )
        assert (
            httpx.get(f"{base}/status", headers={"Host": f"localhost:{port}"}, timeout=10).status_code == 200
        )
        assert (
            httpx.get(f"{base}/status", headers={"Host": f"cam-box.lan:{port}"}, timeout=10).status_code
            == 200
        )
        assert httpx.get(f"{base}/metrics", headers={"Host": f"[::1]:{port}"}, timeout=10).status_code == 200


def test_beyond_loopback_every_route_but_healthz_needs_the_token(clip: Path) -> None:
    token = "lan-token-0123456789"
    with served(_cfg(clip, host="0.0.0.0", token=token)) as (_, port):
        base = f"http://127.0.0.1:{port}"
        for path in ("/metrics", "/status", "/sources", "/", "/frames", "/api/events", "/openapi.json"):
            r = httpx.get(base + path, timeout=10)
            assert r.status_code == 401, (path, r.status_code)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        ok = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/metrics", headers=ok, timeout=10).status_code == 200
        assert httpx.get(f"{base}/login", timeout=10).status_code == 200
        with httpx.Client(base_url=base, timeout=10) as client:  # the pages' way: a same-site cookie
            assert client.post("/api/login", json={"token": "wrong-token-000"}).status_code == 401
            r = client.post("/api/login", json={"token": token})
            assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
            assert client.get("/status").status_code == 200
            assert client.get("/").status_code == 200


def test_env_token_follows_the_length_rule(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMESIFT_CONTROL_TOKEN", "x")
    cfg = _cfg(clip, host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"FRAMESIFT_CONTROL_TOKEN is 1 characters.*at least 8"):
        Services(Pipeline(cfg), cfg.metrics)
    with pytest.raises(ConfigError, match="at least 8"):
        Services(Pipeline(_cfg(clip)), cfg.metrics)
    with pytest.raises(ConfigError, match="at least 8"):  # as the file's token is
        parse_config({"sources": [_spec(clip, "a")], "metrics": {"token": "x"}})


def test_half_open_connections_are_closed_and_capped(clip: Path) -> None:
    cfg = _cfg(clip, read_timeout_s=1.0, max_connections=20)
    with served(cfg) as (_, port):
        socks = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            socks.append(s)
        start = time.monotonic()
        closed = 0
        for s in socks:
            try:
                if s.recv(1024) == b"":
                    closed += 1
            except OSError:
                closed += 1
            finally:
                s.close()
        elapsed = time.monotonic() - start
        assert closed == 40
        assert elapsed < 9.0  # each closed by its deadline, none left open
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert r.status_code == 200


def test_request_bodies_are_bounded(clip: Path) -> None:
    with served(_cfg(clip)) as (p, port):
        big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
        r = httpx.post(
            f"http://127.0.0.1:{port}/sources", content=big, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413 and "bytes" in r.json()["error"]

        def chunks() -> Iterator[bytes]:
            for _ in range(40):
                yield b" " * 65536

        r = httpx.post(
            f"http://127.0.0.1:{port}/sources", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413
        assert set(p.status().sources) == {"a"}


def test_client_aborts_are_one_redacted_log_line(
    clip: Path, restore_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info", "json")
    with served(_cfg(clip)) as (_, port):
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(
                b"POST /sources?token=s3cr3t-value-1234 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"type": '
            )
            s.close()
        time.sleep(1.0)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    docs = [json.loads(ln) for ln in lines]  # every line is one JSON object: no raw traceback
    aborted = [d for d in docs if "aborted" in d["msg"]]
    assert len(aborted) == 3 and all("exc" not in d for d in aborted)
    assert "Traceback" not in err and "s3cr3t-value-1234" not in err


def test_redaction_is_linear_time() -> None:
    def cost(n: int, unit: str) -> float:
        text = unit * (n // len(unit))
        best = float("inf")
        for _ in range(5):
            t = time.process_time()
            redact(text)
            best = min(best, time.process_time() - t)
        return max(best, 1e-4)

    for unit in ("a://b:", "a://b:c@", "x.y@", "pass='x' ", '"token": "a", '):
        small, large = cost(40_000, unit), cost(1_000_000, unit)
        # 25x the input: linear is ~25x (measured 23-27x; the bound leaves room for cache effects);
        # quadratic would be ~625x
        assert large / small < 35, (unit, small, large)
    assert redact("rtsp://user:p@ss@cam:554/x") == "rtsp://user:***@cam:554/x"


@pytest.mark.parametrize("sid", [".", "..", "..."])
def test_path_like_source_ids_are_refused(clip: Path, sid: str) -> None:
    with pytest.raises(ConfigError, match="is not a name"):
        parse_config({"sources": [_spec(clip, sid)]})
    with served(_cfg(clip)) as (p, port):
        r = httpx.post(f"http://127.0.0.1:{port}/sources", json=_spec(clip, sid), timeout=10)
        assert r.status_code == 400 and "is not a name" in r.json()["error"]
        assert set(p.status().sources) == {"a"}


@pytest.mark.parametrize("url", ["rtsp://cam:abc/x", "rtsp://cam:99999/x", "rtsp://:554/x", "http://cam:0/x"])
def test_bad_port_or_host_is_one_line(
    clip: Path, tmp_path: Path, url: str, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    kind = url.split(":")[0]
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text(json.dumps({"sources": [{"type": kind, "url": url}]}))
    assert main(["run", str(cfg_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and ("port" in err or "host" in err), err
    with served(_cfg(clip)) as (_, port):
        r = httpx.post(f"http://127.0.0.1:{port}/sources", json={"type": kind, "url": url}, timeout=10)
        assert r.status_code == 400 and "\n" not in r.json()["error"], r.text


def test_webhook_url_secrets_are_redacted_everywhere(
    clip: Path, restore_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    setup_logging("debug", "plain")
    secret = "T0SECRET/B0SECRET/xoxHOOKKEY123"
    sinks = [
        {
            "type": "webhook",
            "url": f"http://127.0.0.1:1/services/{secret}?sig=abcdef0123456789",
            "max_retries": 1,
        }
    ]
    with served(_cfg(clip, sinks=sinks)) as (p, port):
        wait_for(
            lambda: any(
                s.counts.get("retries", 0) or s.counts.get("failed", 0) for s in p.status().sinks.values()
            )
        )
        base = f"http://127.0.0.1:{port}"
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        status = httpx.get(f"{base}/status", timeout=10).text
        assert 'sink="webhook:http://127.0.0.1:1/***"' in metrics
    err = capfd.readouterr().err
    for text in (metrics, status, err):
        assert "SECRET" not in text and "HOOKKEY" not in text and "abcdef0123456789" not in text


def test_pages_carry_a_content_security_policy_and_the_api_its_schema(clip: Path) -> None:
    with served(_cfg(clip)) as (_, port):
        r = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        schema = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).json()
        assert {"get", "post"} <= set(schema["paths"]["/sources"])
        assert "SourceList" in schema["components"]["schemas"]
        assert "409" in schema["paths"]["/sources"]["post"]["responses"]


def test_metrics_pass_promtool(clip: Path, tmp_path: Path) -> None:
    """Prometheus' own checker accepts the exposition, sinks with redacted labels included."""
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    sinks = [{"type": "jsonl", "path": str(tmp_path / "e.jsonl")},
             {"type": "webhook", "url": "http://127.0.0.1:1/hooks/SECRETPATH?key=HOOKKEY", "max_retries": 1}]  # fmt: skip
    with served(_cfg(clip, sinks=sinks)) as (p, port):
        wait_for(
            lambda: p.status().sources and all(s.frames_decoded > 0 for s in p.status().sources.values())
        )
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert "framesift_" in text
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr
