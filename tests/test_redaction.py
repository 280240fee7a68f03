"""Credential redaction: URLs with awkward passwords, query tokens, JSON, headers, registered
secrets, and the logging set-up (plain and JSON, tracebacks included) in a real subprocess."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from fractions import Fraction

import pytest

from framesift.events import SceneChange, SourceStatus
from framesift.log import (
    JsonFormatter,
    RedactingFilter,
    clear_secrets,
    redact,
    redact_obj,
    register_secret,
    register_url_secrets,
)


@pytest.fixture(autouse=True)
def _clean_secrets() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


URL_CASES = [
    # (text, secret that must vanish, text that must remain)
    ("rtsp://admin:hunter2@10.0.0.5:554/live", "hunter2", "rtsp://admin:***@10.0.0.5:554/live"),
    ("rtsp://admin:p@ss@cam.local/stream1", "p@ss", "rtsp://admin:***@cam.local/stream1"),
    ("rtsp://admin:pa:ss:wd@cam/x", "pa:ss:wd", "rtsp://admin:***@cam/x"),
    ("rtsp://admin:a/b/c@cam:8554/x", "a/b/c", "rtsp://admin:***@cam:8554/x"),
    ("rtsp://admin:p%40ss%3Aw%2Frd@cam/x", "p%40ss%3Aw%2Frd", "rtsp://admin:***@cam/x"),
    ("rtsps://u:q?x=1#frag@cam/x", "q?x=1#frag", "rtsps://u:***@cam/x"),
    ("http://user:pw123@host/a?b=c", "pw123", "http://user:***@host/a?b=c"),
    ("RTSP://Admin:S3cret!$&'()*+,;=@h/x", "S3cret!$&", "RTSP://Admin:***@h/x"),
    ("opening rtsp://u:secret1@h1/a and rtsp://v:secret2@h2/b", "secret", "rtsp://v:***@h2/b"),
    ("url='rtsp://u:it's@h'", "it's", "url='rtsp://u:***@h'"),
    ('{"url": "rtsp://u:qu\\"ote@h/x"}', 'qu\\"ote', '"rtsp://u:***@h/x"'),
    ("<rtsp://u:angled1@h/x>", "angled1", "<rtsp://u:***@h/x>"),
    ("rtsp://:onlypass@h/x", "onlypass", "rtsp://:***@h/x"),
    ("mqtt://sink:mq#tt@broker:1883", "mq#tt", "mqtt://sink:***@broker:1883"),
]


@pytest.mark.parametrize(("text", "secret", "expected"), URL_CASES)
def test_url_passwords(text: str, secret: str, expected: str | None) -> None:
    out = redact(text)
    assert secret not in out
    if expected is not None:
        assert expected in out
    assert redact(out) == out  # idempotent


PARAM_CASES = [
    ("http://h/x?password=hunter2&fps=5", "hunter2", "?password=***&fps=5"),
    ("http://h/x?fps=5&token=abc.def-ghi", "abc.def-ghi", "&token=***"),
    ("https://h/x?api_key=K3Y&b=1", "K3Y", "api_key=***&b=1"),
    ("https://h/x?X-Amz-Signature=deadbeef", "deadbeef", "X-Amz-Signature=***"),
    ("https://h/x?key=v4lue#top", "v4lue", "key=***#top"),
    ("https://h/x?access_token=a%2Fb%3D", "a%2Fb%3D", "access_token=***"),
    ("https://h/x?secret=s3&pwd=p4", "p4", "secret=***&pwd=***"),
    ("login with password=hunter2 user=bob", "hunter2", "password=*** user=bob"),
    ("Cfg(password='pa ss\\'w', host='h')", "pa ss", "host='h'"),
    ('{"password": "x\\"y", "fps": 5}', "x\\", '"fps": 5'),
    ("{'hmac_secret': 'abcd', 'url': 'http://h'}", "abcd", "'url': 'http://h'"),
    ("Authorization: Bearer eyJhbGciOi.J9x", "eyJhbGciOi", "Authorization: Bearer ***"),
    ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "authorization="),
    ("headers={'Authorization': 'Token zzzz9999'}", "zzzz9999", "'Authorization': '***'"),
]


@pytest.mark.parametrize(("text", "secret", "expected"), PARAM_CASES)
def test_query_tokens_and_key_values(text: str, secret: str, expected: str) -> None:
    out = redact(text)
    assert secret not in out
    assert expected in out


@pytest.mark.parametrize(
    "text",
    [
        "http://127.0.0.1:8080/hook",
        "rtsp://cam.local:554/stream?channel=1&subtype=0",
        "rtsp://user@cam/stream",  # a user name alone is not a secret
        "keyframes_only=true fps=25 frames=100",
        "time_base=1/25 pts=512",
        "plain text with an email a@b.c and a: colon",
    ],
)
def test_harmless_text_is_untouched(text: str) -> None:
    assert redact(text) == text


def test_registered_secrets_in_any_form() -> None:
    pw = "s3cr:t@/pw"
    register_secret(pw)
    register_secret("ab")  # too short to register: would mask innocent text
    for text in (f"auth failed for {pw}", "encoded s3cr%3At%40%2Fpw here", f"pw={pw}"):
        assert pw not in redact(text) and "s3cr%3At" not in redact(text)
    assert redact("about ab") == "about ab"
    # a raw space cannot be told apart from the end of a URL: only registration catches it
    register_secret("sec ret")
    assert redact("url='rtsp://u:sec ret@h'") == "url='rtsp://u:***@h'"


def test_events_serialised_without_secrets() -> None:
    ev = SourceStatus(source="cam", state="failed", detail="cannot open rtsp://u:hunter2@h/x?token=abc123")
    d = redact_obj(ev.to_dict())
    text = json.dumps(d)
    assert "hunter2" not in text and "abc123" not in text
    assert d["detail"] == "cannot open rtsp://u:***@h/x?token=***"
    sc = SceneChange(source="cam", frame_index=1, pts=1, time_base=Fraction(1, 25), time=0.04, score=1.0)
    assert redact_obj(sc.to_dict()) == sc.to_dict()  # nothing to hide, nothing changed


def test_filter_and_json_formatter_redact_records() -> None:
    record = logging.LogRecord(
        "framesift.x", logging.INFO, __file__, 1, "open %s", ("rtsp://u:pw99@h",), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "open rtsp://u:***@h"
    try:
        raise ValueError("rtsp://u:tracepw@h failed")
    except ValueError:
        rec2 = logging.LogRecord("framesift.x", logging.ERROR, __file__, 1, "x", None, sys.exc_info())
    out = json.loads(JsonFormatter().format(rec2))
    assert "tracepw" not in out["exc"] and "rtsp://u:***@h" in out["exc"]


CHILD = textwrap.dedent(
    """
    import logging, sys
    import httpx  # noqa: F401  (its logger is protected by setup_logging)
    from framesift.log import setup_logging
    setup_logging("debug", sys.argv[1])
    log = logging.getLogger("framesift.source")
    pw = "Pa:ss@w/rd%2F1"
    log.info("connecting to rtsp://admin:%s@10.0.0.7:554/h264", pw)
    log.warning("GET http://cam/snapshot?user=admin&password=%s&fps=1", pw)
    logging.getLogger("httpx").warning("HTTP Request: POST http://h/hook?token=tok123456 500")
    try:
        raise ConnectionError(f"rtsp://admin:{pw}@10.0.0.7 refused")
    except ConnectionError:
        log.exception("source failed")
    log.info("done")
    """
)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_logging_setup_redacts_everything_on_stderr(fmt: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, fmt], capture_output=True, text=True, timeout=60, check=True
    )
    err = proc.stderr
    assert "done" in err and "source failed" in err and "refused" in err
    for leaked in ("Pa:ss", "w/rd", "%2F1", "tok123456"):
        assert leaked not in err, err
    assert "rtsp://admin:***@10.0.0.7:554/h264" in err and "password=***&fps=1" in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert [x["level"] for x in lines][:2] == ["info", "warning"]
        assert any("exc" in x for x in lines)


def test_serialised_events_stay_valid_json() -> None:
    from framesift.sinks.webhook import event_body

    ev = SourceStatus(source="cam", state="failed", detail='token=", "x": "rtsp://u:p@h", password=')
    body = json.loads(event_body(ev))
    assert body["state"] == "failed" and "p@h" not in body["detail"]


@pytest.mark.parametrize("sep", [",", ", "])
def test_redacting_json_text_keeps_it_valid(sep: str) -> None:
    doc = {"a": "x?token=", "b": "password=", "c": "rtsp://u:pw1@h", "d": "k='v'", "e": {"token": "t0k3n"}}
    text = json.dumps(doc, separators=(sep, ":"))
    out = json.loads(redact(text))
    assert out["a"] == "x?token=" and out["b"] == "password=" and out["c"] == "rtsp://u:***@h"
    assert out["e"]["token"] == "***"


def test_url_secrets_registered_in_decoded_form_too() -> None:
    register_url_secrets("rtsp://admin:p%40ss%2Fw0rd@cam/x?token=tk%3D99zz&auth=none&fps=5")
    # e.g. FFmpeg echoing the decoded password without the URL around it
    out = redact("auth failed: password 'p@ss/w0rd' rejected; token tk=99zz expired")
    assert "p@ss/w0rd" not in out and "tk=99zz" not in out
    assert redact("fps=5, none left") == "fps=5, none left"
