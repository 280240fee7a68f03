"""Webhook sink against a real local HTTP server: retries, once-only delivery, a hanging receiver
that never blocks the caller, HMAC signatures, and no secret in logs or bodies."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from framesift.events import SceneChange, SourceStatus
from framesift.log import clear_secrets
from framesift.sinks.base import SinkWorker
from framesift.sinks.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSink,
    WebhookSinkConfig,
    event_body,
    event_id,
    verify,
)

SECRET = "hm@c-s3cret/key"
TOKEN = "tok-9f8e7d6c5b4a"
BEARER = "bearer-abcdef123456"


def wait_until(pred: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Receiver:
    """What the test server saw, and how it answers: ``plan(key, attempt) -> status | 'hang'``."""

    plan: Callable[[str, int], int | str] = lambda key, attempt: 200
    requests: list[dict] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)  # idempotency keys answered 2xx, in order
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def attempts(self, key: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["key"] == key)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            key = self.headers.get("Idempotency-Key", "")
            with rec.lock:
                attempt = sum(1 for r in rec.requests if r["key"] == key) + 1
                rec.requests.append(
                    {"key": key, "body": body, "headers": dict(self.headers), "path": self.path}
                )
            action = rec.plan(key, attempt)
            if action == "hang":
                rec.release.wait(15)  # the client times out long before
                self.close_connection = True
                return
            if action == "drip":  # 200 at once, then a 1000-byte body at one byte per 50 ms
                with rec.lock:
                    rec.processed.append(key)
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.close_connection = True
                with contextlib.suppress(OSError):  # the client hangs up early
                    for _ in range(1000):
                        if rec.release.wait(0.05):
                            return
                        self.wfile.write(b"x")
                        self.wfile.flush()
                return
            status = int(action)
            if 200 <= status < 300:
                with rec.lock:
                    if key not in rec.processed:  # a receiver dedupes on the idempotency key
                        rec.processed.append(key)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http")
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def _forget_secrets() -> None:
    clear_secrets()


def scene(i: int) -> SceneChange:
    from fractions import Fraction

    return SceneChange(source="cam1", frame_index=i, pts=i, time_base=Fraction(1, 25), time=i / 25, score=1.0)


def start(url: str, **kw: object) -> tuple[WebhookSink, SinkWorker]:
    worker_kw = {k: kw.pop(k) for k in ("queue_size", "max_retries") if k in kw}
    sink = WebhookSink.from_config(WebhookSinkConfig.model_validate({"url": url, **kw}))
    w = SinkWorker(sink, retry_initial_s=0.05, retry_max_s=0.2, **worker_kw)  # type: ignore[arg-type]
    w.start()
    return sink, w


def test_500s_then_200_delivers_each_event_once_in_order(receiver: Receiver) -> None:
    receiver.plan = lambda key, attempt: 500 if attempt <= 2 else 200
    sink, w = start(receiver.url, max_retries=5)
    events = [scene(i) for i in range(8)]
    for ev in events:
        assert w.submit(ev)
    wait_until(lambda: len(receiver.processed) == 8, what="8 deliveries")
    w.stop()
    bodies = {r["key"]: json.loads(r["body"]) for r in receiver.requests}
    assert [bodies[k]["frame_index"] for k in receiver.processed] == list(range(8))
    assert all(receiver.attempts(k) == 3 for k in receiver.processed)  # same key on every retry
    assert len(receiver.requests) == 24 and sink.stats["delivered"] == 8
    assert w.counts["written"] == 8 and w.counts["retries"] == 16 and w.counts["failed"] == 0
    assert sink.stats["transient_errors"] == 16


def test_4xx_is_not_retried_but_429_is(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    bad = scene(0)
    bad_key = event_id(event_body(bad))
    receiver.plan = lambda key, attempt: 400 if key == bad_key else (429 if attempt == 1 else 200)
    sink, w = start(receiver.url)
    w.submit(bad)
    w.submit(scene(1))
    wait_until(lambda: len(receiver.processed) == 1, what="the good event")
    w.stop()
    assert receiver.attempts(bad_key) == 1
    assert sink.stats["rejected"] == 1 and w.counts["failed"] == 1 and w.counts["dropped:write_failed"] == 1
    assert w.counts["written"] == 1 and w.counts["retries"] == 1
    assert "rejected the event with HTTP 400; not retried" in caplog.text


def test_retries_exhausted_drop_and_count(receiver: Receiver) -> None:
    receiver.plan = lambda key, attempt: 503
    sink, w = start(receiver.url, max_retries=2)
    w.submit(scene(0))
    wait_until(lambda: w.counts["failed"] == 1, what="the drop")
    w.stop()
    assert len(receiver.requests) == 3 and receiver.processed == []
    assert w.counts["dropped:write_failed"] == 1 and sink.stats["delivered"] == 0


def test_hanging_receiver_times_out_retries_and_never_blocks_submit(receiver: Receiver) -> None:
    # Every event's first attempt hangs until the test says so; the test only says so after the
    # caller has submitted everything, so a submit that waited for delivery would deadlock here.
    receiver.plan = lambda key, attempt: "hang" if attempt == 1 else 200
    sink, w = start(receiver.url, timeout_s=0.3, queue_size=8, max_retries=8)
    accepted = [w.submit(scene(i)) for i in range(200)]
    assert len(accepted) == 200
    wait_until(lambda: sink.stats["timeouts"] >= 2, what="two timeouts")
    receiver.release.set()
    n = sum(accepted)
    assert w.counts["dropped:queue_full"] == 200 - n and n < 200  # bounded queue: counted, not blocked
    wait_until(lambda: len(receiver.processed) == n, timeout=30, what="every accepted event")
    w.stop()
    delivered = [
        json.loads(r["body"])["frame_index"] for r in receiver.requests if r["key"] in receiver.processed
    ]
    got = sorted(set(delivered), key=delivered.index)
    assert got == sorted(got) and len(got) == n  # in order, once each
    assert w.counts["written"] == n and sink.stats["delivered"] == n


def test_hmac_signature_verifies(receiver: Receiver) -> None:
    _, w = start(receiver.url, hmac_secret=SECRET)
    w.submit(SourceStatus(source="cam1", state="up"))
    wait_until(lambda: len(receiver.processed) == 1, what="delivery")
    w.stop()
    req = receiver.requests[0]
    headers = {k.lower(): v for k, v in req["headers"].items()}
    ts, sig, body = headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()], req["body"]
    # the recipe from docs/delivery.md, independent of framesift:
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sig, expected)
    assert verify(SECRET, ts, body, sig)
    assert not verify(SECRET, ts, body.replace(b"up", b"down"), sig)
    assert not verify("other-secret", ts, body, sig)
    assert not verify(SECRET, str(int(ts) - 3600), body, sig)  # replayed an hour later
    assert headers["idempotency-key"] == headers["x-framesift-event-id"]
    assert headers["content-type"] == "application/json"


def test_no_secret_in_logs_or_bodies(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.plan = lambda key, attempt: 500 if attempt == 1 else 200
    url = f"{receiver.url}?token={TOKEN}"
    sink, w = start(url, hmac_secret=SECRET, headers={"Authorization": f"Bearer {BEARER}"})
    w.submit(
        SourceStatus(source="cam1", state="failed", detail=f"cannot open rtsp://admin:{SECRET}@10.1.1.1/s")
    )
    wait_until(lambda: len(receiver.processed) == 1, what="delivery")
    w.stop()
    assert receiver.requests[0]["path"].endswith(f"token={TOKEN}")  # the receiver still gets it
    text = caplog.text
    assert "retry" in text and "HTTP 500" in text  # the failure was logged...
    assert "token=***" in text or TOKEN not in text
    body = receiver.requests[-1]["body"].decode()
    for secret in (TOKEN, SECRET, BEARER):
        assert secret not in text  # ...without its secrets
        assert secret not in body
        assert secret not in sink.name
    assert "rtsp://admin:***@10.1.1.1" in body


def test_config_validation() -> None:
    from pydantic import ValidationError

    cfg = WebhookSinkConfig(url="https://h/x")
    assert cfg.timeout_s == 5.0 and cfg.verify_tls is True and cfg.hmac_secret is None
    with pytest.raises(ValidationError, match="url"):
        WebhookSinkConfig(url="ftp://h/x")
    with pytest.raises(ValidationError, match="extra"):
        WebhookSinkConfig.model_validate({"url": "http://h", "retries": 3})


def test_receiver_down_is_retried_then_dropped_and_counted() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink, w = start(f"http://127.0.0.1:{port}/hook", max_retries=2)
    assert w.submit(scene(0))
    wait_until(lambda: w.counts["failed"] == 1, what="the drop")
    w.stop()
    assert sink.stats["transient_errors"] == 3 and sink.stats["delivered"] == 0
    assert w.counts["retries"] == 2 and w.counts["dropped:write_failed"] == 1
    assert "ConnectError" in (w.last_error or "")


def test_dripping_response_body_does_not_hold_the_sink(receiver: Receiver) -> None:
    # Each read gets a byte well within timeout_s, so per-read timeouts alone would wait ~50 s.
    receiver.plan = lambda key, attempt: "drip"
    sink = WebhookSink.from_config(WebhookSinkConfig.model_validate({"url": receiver.url, "timeout_s": 0.5}))
    sink.open()
    try:
        t = time.monotonic()
        sink.write(scene(1))  # 200 came first: delivered, not retried
        took = time.monotonic() - t
    finally:
        sink.close()
    assert took < 5.0, took
    assert sink.stats["delivered"] == 1 and sink.stats["last_status"] == 200
    assert receiver.attempts(receiver.processed[0]) == 1
