"""Logging set-up (plain or JSON lines) and credential redaction.

:func:`redact` removes secrets from any text before it reaches a log line, a metrics label, an event
or a status document:

- passwords in URLs (``rtsp://user:pass@host`` → ``rtsp://user:***@host``), also when the password
  holds ``@``, ``:``, ``/`` or percent-escapes (everything up to the *last* ``@`` of the URL is
  taken as user info, so a path holding ``@`` after a ``host:port`` is over-redacted, never leaked);
- secret-looking query or ``key=value`` parameters (``?password=``, ``token=``, ``api_key=``,
  ``sig=``, ``secret=``, ``auth=``...) and JSON members (``"password": "..."``);
- ``Bearer`` tokens and ``Authorization:`` header values;
- any literal registered with :func:`register_secret` (an MQTT password, an HMAC key) or
  :func:`register_url_secrets` (a camera URL's password), in plain and percent-encoded form,
  wherever it appears.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"

# scheme://user:password@  — the password runs (greedily, so to the last '@') over anything but
# whitespace, double quotes and angle brackets (so compact JSON stays valid); a backslash-escaped
# character (JSON, repr) is allowed. Matched in linear time by _mask_credentials: a run of such
# characters is found once, its last '@' once, and only then the scheme and user before it (a scheme
# is at most 32 characters, so no position is scanned more than a bounded number of times).
_CRED_RE = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)"
    r"(?P<user>[^\s/?#:'\"<>\\]*):"
    r"(?P<pw>(?:\\.|[^\s\"<>\\])*)@"
)
_RUN_RE = re.compile(r"(?:\\.|[^\s\"<>\\]+)+")
_HEAD_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^\s/?#:'\"<>\\]*:")

_SECRET_KEYS = (
    r"password|passwd|pwd|pass|passphrase|token|secret|key|sig|signature|auth|authorization"
    r"|credential|credentials|session|sessionid"
)
# name=value (query strings, form bodies, "k=v" log fields): a name ending in a secret word. A
# quoted value may not start with , : } ] (that quote closes a JSON/repr string, it opens nothing).
_VALUE = r"""'(?![,:}\]])(?:\\.|[^'\\])*'|"(?![,:}\]])(?:\\.|[^"\\])*"|[^&#\s'"<>]+"""
_PARAM_RE = re.compile(
    rf"(?P<k>(?<![A-Za-z0-9_.\-])[A-Za-z0-9_.\-]*?(?:{_SECRET_KEYS})=)(?P<v>{_VALUE})",
    re.IGNORECASE,
)
# "password": "value" (JSON / repr of dicts)
_JSON_RE = re.compile(
    rf"(?P<k>[\"'][A-Za-z0-9_.\-]*?(?:{_SECRET_KEYS})[\"']\s*:\s*)"
    r"(?P<q>[\"'])(?P<v>(?:\\.|(?!(?P=q)).)*)(?P=q)",
    re.IGNORECASE,
)
_BEARER_RE = re.compile(r"(?P<k>\b(?:Bearer|Basic|Digest)\s+)(?P<v>[A-Za-z0-9._~+/=\-]{6,})")
_AUTHZ_RE = re.compile(
    r"(?P<k>\bauthorization\s*[:=]\s*(?:(?:Bearer|Basic|Digest)\s+)?)(?P<v>[^\s,;'\"]+)", re.IGNORECASE
)

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None
MIN_SECRET_LEN = 4


def register_secret(value: str | None) -> None:
    """Redact ``value`` (and its percent-encoded form) wherever it appears from now on.

    Values shorter than :data:`MIN_SECRET_LEN` are ignored: masking every ``"ab"`` in every log
    line would hide more than it protects.
    """
    global _secrets_re
    if not value or len(value) < MIN_SECRET_LEN:
        return
    forms = {value, quote(value, safe=""), quote(value, safe="/:")}
    with _secrets_lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(s) for s in ordered))


def register_url_secrets(url: str) -> None:
    """Register the password and secret query values of ``url`` (raw and percent-decoded).

    Call it where a source or sink URL enters the process, so that a library echoing the password
    in another shape (FFmpeg prints it decoded) is still masked.
    """
    for m in _CRED_RE.finditer(url[:4096]):  # a URL, not a log line: bounded
        pw = m.group("pw")
        register_secret(pw)
        register_secret(unquote(pw))
    for m in _PARAM_RE.finditer(url):
        value = m.group("v").strip("'\"")
        if len(value) >= 8:  # short values (auth=none, key=true) would mask innocent words
            register_secret(value)
            register_secret(unquote(value))


def clear_secrets() -> None:
    """Forget every registered secret (tests)."""
    global _secrets_re
    with _secrets_lock:
        _secrets.clear()
        _secrets_re = None


def redact(text: str) -> str:
    """Return ``text`` with every credential masked (see the module docstring)."""
    if not text:
        return text
    sre = _secrets_re
    if sre is not None:
        text = sre.sub(MASK, text)
    if "://" in text:
        text = _mask_credentials(text)
    text = _BEARER_RE.sub(lambda m: m.group("k") + MASK, text)
    text = _AUTHZ_RE.sub(lambda m: m.group("k") + MASK, text)
    if "=" in text:
        text = _PARAM_RE.sub(lambda m: m.group("k") + MASK, text)
    if ":" in text:
        text = _JSON_RE.sub(lambda m: f"{m.group('k')}{m.group('q')}{MASK}{m.group('q')}", text)
    return text


def _mask_credentials(text: str) -> str:
    """``scheme://user:password@`` → ``scheme://user:***@`` (password up to the run's last ``@``)."""
    out: list[str] = []
    pos = 0
    for run in _RUN_RE.finditer(text):
        chunk = run.group()
        if "://" not in chunk:
            continue
        at = chunk.rfind("@")
        if at < 0:
            continue
        head = _HEAD_RE.search(chunk, 0, at)
        if head is None:
            continue
        out.append(text[pos : run.start() + head.start()])
        out.append(f"{head.group()}{MASK}@")
        pos = run.start() + at + 1
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def mask_url_path(url: str) -> str:
    """``scheme://host[:port]/***`` for a URL whose path and query may hold a secret (webhook URLs:
    Slack-style hooks carry their key in the path); user info is dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    tail = rest[len(rest.split("/", 1)[0]) :]
    return f"{scheme}://{host}/{MASK}" if tail.strip("/") else f"{scheme}://{host}"


def register_url_path_secret(url: str) -> None:
    """Register the path and query of ``url`` as secrets (see :func:`mask_url_path`)."""
    _, sep, rest = url.partition("://")
    if not sep or "/" not in rest:
        return
    tail = rest[rest.index("/") :]
    path = tail.split("?", 1)[0].split("#", 1)[0]
    if len(path.strip("/")) >= 8:  # short paths (/hook) would mask innocent words
        register_secret(path)
        register_secret(path.strip("/"))
    if "?" in tail:
        register_secret(tail.split("?", 1)[1].split("#", 1)[0])
    register_url_secrets(url)


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure (dict keys are left alone)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


class RedactingFilter(logging.Filter):
    """Redacts credentials in every record's final message (attach to a handler or a logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a malformed record: let the handler report it
            return True
        red = redact(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True


_FILTER = RedactingFilter()


def protect_logger(name: str) -> None:
    """Redact records logged on ``name`` (e.g. ``httpx``, which logs request URLs) at the source."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


class RedactingFormatter(logging.Formatter):
    """A plain formatter whose whole output (message, traceback, stack) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (+ exc); every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out)


class ConsoleHandler(logging.StreamHandler):
    """Writes through tqdm, so a log line printed while a progress bar is drawn does not break it
    (the bar is cleared, the line written, the bar redrawn)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            if getattr(self.stream, "closed", False):  # the stream it was given is gone: stderr now
                self.stream = sys.stderr
            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


def adopt_logger(name: str) -> None:
    """Send a library's logger through framesift's handler (format, redaction, level) instead of the
    handlers it installed itself (ultralytics prints its own lines)."""
    ours = logging.getLogger("framesift")
    lib = logging.getLogger(name)
    for h in list(lib.handlers):
        lib.removeHandler(h)
    for h in ours.handlers:
        lib.addHandler(h)
    lib.setLevel(max(ours.level, logging.WARNING) if ours.level > logging.DEBUG else logging.DEBUG)
    lib.propagate = False


def setup_logging(level: str = "info", fmt: str = "plain") -> None:
    """Configure the ``framesift`` logger on stderr, and route other libraries' warnings (the root
    logger, Python warnings) through the same format; idempotent."""
    logger = logging.getLogger("framesift")
    logger.setLevel(level.upper())
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = ConsoleHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        fmtr = RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        fmtr.converter = time.localtime
        handler.setFormatter(fmtr)
    handler.addFilter(_FILTER)
    logger.addHandler(handler)
    logger.propagate = False
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, ConsoleHandler):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING, logger.level))
    logging.captureWarnings(True)
    for name in ("httpx", "httpcore", "paho", "urllib3"):
        protect_logger(name)
