"""uvicorn on its own thread, in the pipeline's process, serving one ASGI app.

The listening socket is bound when the server is built (a taken port is a ConfigError at once, and
``port`` is known before it starts). Each connection must deliver a whole request within
``read_timeout_s`` (a half-open or dripping client is closed), at most ``max_connections`` are open
at once (the next are closed on arrival), and uvicorn's own log lines go through framesift's
handler (format, redaction).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from framesift.errors import ConfigError
from framesift.log import adopt_logger

log = logging.getLogger("framesift.web")


class _GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request read deadline and a connection cap."""

    read_timeout_s = 10.0
    max_connections = 100
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning(
                "connection from %s closed: %d connections open (the cap)", _peer(self), self.max_connections
            )
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_deadline)

    def _read_deadline(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):  # headers or body still incomplete
            log.info("connection from %s closed: no whole request in %.0fs", _peer(self), self.read_timeout_s)
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)


def _peer(proto: H11Protocol) -> str:
    client = getattr(proto, "client", None)
    return f"{client[0]}:{client[1]}" if client else "?"


class WebServer:
    """Serves ``app`` on ``host:port`` from a daemon thread; :meth:`stop` closes it and its port."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        read_timeout_s: float = 10.0,
        max_connections: int = 100,
        what: str = "metrics",
    ) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family = infos[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            sock.listen(128)
        except OSError as exc:
            raise ConfigError(
                f"{what} server cannot listen on {host}:{port}: {exc.strerror or exc} "
                f"(choose another {what}.port, 0 for a free one, or set {what}.enabled: false)"
            ) from None
        sock.setblocking(False)
        self._sock = sock
        self.host = host
        self.port = int(sock.getsockname()[1])
        protocol = type(
            "GuardedH11",
            (_GuardedH11,),
            {"read_timeout_s": read_timeout_s, "max_connections": max_connections},
        )
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            adopt_logger(name)
        config = uvicorn.Config(
            app,
            http=protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=2,
            h11_max_incomplete_event_size=32 * 1024,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._stopping: threading.Event | None = getattr(app, "stopping", None)
        self._thread = threading.Thread(target=self._serve, name="web-http", daemon=True)

    def _serve(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # SystemExit from uvicorn on a start-up failure included
            log.error("web server stopped: %s: %s", type(exc).__name__, exc)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        if self._thread.is_alive():
            if self._stopping is not None:
                self._stopping.set()  # event streams end at their next poll
                time.sleep(0.3)
            self._server.should_exit = True
            self._thread.join(10.0)
        self._sock.close()
