"""``framesift serve --store DIR [--scenes DIR] [--port N]``: the kept-frame and scenes pages without a
pipeline running (``framesift run`` serves the live pages beside these)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from framesift.errors import ConfigError

log = logging.getLogger("framesift.cli.serve")


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the web UI over a frame store and scenes reports (no pipeline)",
        description="Serve the kept-frames gallery, search and dataset map of a frame store, and the "
        "reports that `framesift scenes` wrote, in a browser. Binds 127.0.0.1 unless --host says otherwise "
        "(then a token is required: --token or $FRAMESIFT_CONTROL_TOKEN).",
    )
    p.add_argument("--store", default=None, metavar="DIR", help="frame store (DIR or DIR/store of collect)")
    p.add_argument("--scenes", default=None, metavar="DIR", help="folder of `framesift scenes` reports")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9464, help="port (default 9464; 0 picks a free one)")
    p.add_argument("--token", default=None, help="bearer token (default $FRAMESIFT_CONTROL_TOKEN)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name browsers use to reach this server (LAN name); repeatable")  # fmt: skip
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from framesift.store import resolve_store_dir
    from framesift.web.app import build_app
    from framesift.web.security import MIN_TOKEN_LEN, Policy, control_token, is_loopback
    from framesift.web.server import WebServer

    if args.store is None and args.scenes is None:
        raise ConfigError("serve: give --store DIR, --scenes DIR or both")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: use 0 to 65535")
    if args.token is not None and len(args.token) < MIN_TOKEN_LEN:
        raise ConfigError(f"--token: use at least {MIN_TOKEN_LEN} characters")
    token = control_token(args.token)
    if not is_loopback(args.host) and not token:
        raise ConfigError(
            f"--host {args.host!r} is not a loopback address: set --token (or $FRAMESIFT_CONTROL_TOKEN), "
            "or bind 127.0.0.1"
        )
    store = None if args.store is None else resolve_store_dir(args.store)
    policy = Policy(bind_host=args.host, token=token, allowed_hosts=tuple(args.allowed_host))
    app = build_app(policy, store_dir=store, scenes_dir=args.scenes)
    server = WebServer(app, host=args.host, port=args.port, what="serve")
    stop = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    server.start()
    page = "/frames" if store is not None else "/scenes"
    print(f"framesift UI on http://{args.host}:{server.port}{page} (Ctrl-C stops)", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
        for sig, h in handlers.items():
            signal.signal(sig, h)
    return 0
