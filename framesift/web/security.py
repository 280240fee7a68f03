"""The HTTP surface's rules, applied to every request by one ASGI middleware (:class:`Guard`):

* **Host allow-list** (DNS rebinding): the ``Host`` header must name an allowed host — by default
  ``127.0.0.1``, ``localhost``, ``[::1]`` and the bind address; ``metrics.allowed_hosts`` adds names
  for LAN use. Checked on every route.
* **Origin check** (cross-site requests): a state-changing request (POST, PUT, PATCH, DELETE) with an
  ``Origin`` must come from an allowed host, and must not carry a body type a cross-site form can send
  without a CORS preflight (``text/plain``, form encodings): with or without a token.
* **Token**: bound beyond loopback, every route but ``/healthz`` (and the login page) needs the bearer
  token (``Authorization: Bearer`` or the ``framesift_token`` cookie set by ``POST /api/login``); on
  loopback a configured token guards the API (``/sources``, ``/api/...``).
* **Limits**: request bodies over ``max_body_bytes`` are refused with 413 (declared or streamed).
* **Headers**: a Content-Security-Policy (no inline script, nothing from elsewhere), ``nosniff``,
  ``frame-ancestors 'none'`` and ``no-referrer`` on every response.
* **Client aborts** are logged on one line through redaction, never as a traceback.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from framesift.errors import ConfigError
from framesift.log import redact, register_secret

log = logging.getLogger("framesift.web")

TOKEN_ENV = "FRAMESIFT_CONTROL_TOKEN"
MIN_TOKEN_LEN = 8
COOKIE = "framesift_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIMPLE_BODY_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: scenes reports are standalone HTML files with inline styles: served sandboxed, scripts off
REPORT_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; media-src 'self'"
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/static/login.js", "/static/style.css", "/api/login"})
LOOPBACK_FREE = ("/metrics", "/status", "/healthz", "/static/", "/login", "/api/login")
PAGES = frozenset({"/", "/live", "/events", "/frames", "/map", "/scenes"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def control_token(configured: str | None) -> str | None:
    """The configured token, else ``$FRAMESIFT_CONTROL_TOKEN`` (empty = none), which follows the same
    length rule as the file's (ConfigError); registered as a secret."""
    env = os.environ.get(TOKEN_ENV) or None
    if not configured and env is not None and len(env) < MIN_TOKEN_LEN:
        raise ConfigError(
            f"${TOKEN_ENV} is {len(env)} characters long: use at least {MIN_TOKEN_LEN} "
            "(for example the output of `openssl rand -hex 16`), or unset it"
        )
    token = configured or env
    register_secret(token)
    return token


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """``example:8080`` → ``example``; ``[::1]:80`` → ``::1``; lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


@dataclass(frozen=True)
class Policy:
    """What :class:`Guard` enforces; built from the ``metrics:`` config section."""

    bind_host: str = "127.0.0.1"
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    hosts: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = {"127.0.0.1", "localhost", "::1", *(_host_name(h) for h in self.allowed_hosts)}
        bind = _host_name(self.bind_host)
        if bind not in ("0.0.0.0", "::", ""):
            names.add(bind)
        object.__setattr__(self, "hosts", frozenset(names))

    @property
    def loopback(self) -> bool:
        return is_loopback(self.bind_host)

    def host_allowed(self, host: str | None) -> bool:
        return host is not None and ("*" in self.hosts or _host_name(host) in self.hosts)

    def needs_token(self, path: str) -> bool:
        if not self.token or path in PUBLIC_PATHS:
            return False
        if not self.loopback:
            return True
        return not (path in PAGES or path.startswith(LOOPBACK_FREE))

    def authorized(self, authorization: str | None, cookie: str | None) -> bool:
        if not self.token:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode()):
            return True
        return cookie is not None and hmac.compare_digest(cookie.encode(), self.token.encode())


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def origin_allowed(policy: Policy, origin: str, host: str | None) -> bool:
    """Same origin: the ``Origin`` names the host (and port) the request was sent to, an allowed one."""
    if origin == "null" or host is None:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and parts.netloc.lower() == host.strip().lower()
        and policy.host_allowed(parts.netloc)
    )


class ClientAborted(Exception):
    """The client went away while its request body was read."""


class Guard:
    """Pure ASGI middleware applying :class:`Policy` (see the module docstring)."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy
        self.stopping = threading.Event()  # set by the server before it stops: long streams end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        hdrs = _headers(scope)
        p = self.policy
        if not p.host_allowed(hdrs.get("host")):
            await _reply(
                send, 421, f"host {hdrs.get('host')!r} is not allowed: add it to metrics.allowed_hosts"
            )
            return
        if method in UNSAFE_METHODS:
            origin = hdrs.get("origin")
            if origin is not None and not origin_allowed(p, origin, hdrs.get("host")):
                await _reply(send, 403, "cross-origin request refused (Origin is not an allowed host)")
                return
            if hdrs.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                await _reply(send, 403, "cross-site request refused (Sec-Fetch-Site)")
                return
            ctype = hdrs.get("content-type", "").split(";")[0].strip().lower()
            if ctype in SIMPLE_BODY_TYPES:
                await _reply(send, 415, f"Content-Type {ctype} is not accepted: send application/json")
                return
        if p.needs_token(path) and not p.authorized(
            hdrs.get("authorization"), _cookie(hdrs.get("cookie"), COOKIE)
        ):
            await _reply(send, 401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
            return
        declared = hdrs.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > p.max_body_bytes):
            await _reply(send, 413, f"request body over {p.max_body_bytes} bytes (or invalid Content-Length)")
            return
        seen = 0
        aborted = False
        state = {"too_large": False, "replied": False}

        async def limited_receive() -> Message:
            nonlocal seen, aborted
            msg = await receive()
            if msg["type"] == "http.disconnect":
                aborted = True
            seen += len(msg.get("body", b""))
            if seen > p.max_body_bytes:
                state["too_large"] = True
                raise _TooLarge
            return msg

        async def send_with_headers(msg: Message) -> None:
            if state["too_large"]:  # the app answered its own error: answer 413 instead, once
                if not state["replied"]:
                    state["replied"] = True
                    await _reply(send, 413, f"request body over {p.max_body_bytes} bytes")
                return
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers") or [])
                names = {k.lower() for k, _ in headers}
                for k, v in _SECURITY_HEADERS:
                    if k not in names:
                        headers.append((k, v))
                msg["headers"] = headers
            await send(msg)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            if not state["replied"]:
                await _reply(send, 413, f"request body over {p.max_body_bytes} bytes")
        except Exception as exc:
            if state["replied"]:
                return
            if aborted or _is_disconnect(exc):
                client = scope.get("client") or ("?", 0)
                log.info("client %s aborted %s %s (%s)", client[0], method, redact(path), type(exc).__name__)
                return
            log.warning("%s %s failed: %s: %s", method, redact(path), type(exc).__name__, redact(str(exc)))
            with contextlib.suppress(Exception):  # the response had started: nothing more to say
                await _reply(send, 500, f"{type(exc).__name__}: {redact(str(exc))}")


class _TooLarge(Exception):
    pass


def _is_disconnect(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(names & {"ClientDisconnect", "ConnectionResetError", "BrokenPipeError", "ClientAborted"})


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        todo.extend(getattr(e, "exceptions", ()))


_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


async def _reply(send: Send, code: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = (json.dumps({"error": message}) + "\n").encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    raw += list(_SECURITY_HEADERS)
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": body})
