"""Logging set-up (plain or JSON lines) and credential redaction."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_CRED_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*)(?::[^/@\s]*)?@")


def redact(text: str) -> str:
    """Replace credentials in any URL inside ``text``: ``rtsp://u:p@h`` → ``rtsp://u:***@h``."""

    def _sub(m: re.Match[str]) -> str:
        return f"{m.group('scheme')}{m.group('user')}:***@"

    return _CRED_RE.sub(_sub, text)


class RedactingFilter(logging.Filter):
    """Redacts credentials in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        red = redact(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out)


def setup_logging(level: str = "info", fmt: str = "plain") -> None:
    """Configure the ``framesift`` logger on stderr; idempotent."""
    logger = logging.getLogger("framesift")
    logger.setLevel(level.upper())
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        fmtr = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        fmtr.converter = time.localtime
        handler.setFormatter(fmtr)
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.propagate = False
