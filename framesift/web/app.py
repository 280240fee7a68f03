"""One ASGI app (FastAPI on Starlette) for everything served over HTTP: ``/metrics``, ``/healthz``,
``/status``, the sources API (:mod:`framesift.web.api`), the live feed, the kept-frame store
(:mod:`framesift.web.store_api`), scenes reports and the UI's static pages (``framesift/web/static``,
plain JS, no build step). :mod:`framesift.web.security` guards every request.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from framesift.log import redact_obj
from framesift.pipeline.status import SourceControl, StatusSource
from framesift.web.api import ErrorBody, error, sources_router
from framesift.web.app_common import jpeg
from framesift.web.security import COOKIE, Guard, Policy

STATIC = Path(__file__).with_name("static")
PAGE_FILES = {"/": "live.html", "/live": "live.html", "/events": "events.html", "/frames": "frames.html",
              "/map": "map.html", "/scenes": "scenes.html", "/login": "login.html"}  # fmt: skip
SSE_POLL_S = 0.25


class Login(BaseModel):
    token: str


class Info(BaseModel):
    """What this server offers (the UI hides the pages it cannot fill)."""

    live: bool
    control: bool
    store: bool
    scenes: bool
    token: bool


def build_app(
    policy: Policy,
    *,
    metrics: Callable[[], bytes] | None = None,
    pipeline: StatusSource | None = None,
    control: bool = False,
    store_dir: str | Path | None = None,
    scenes_dir: str | Path | None = None,
    embedder_factory: Callable[[], Any] | None = None,
    text_rate: tuple[int, float] = (30, 60.0),
) -> Guard:
    """The app, wrapped in its :class:`Guard`. ``pipeline`` may be None (``framesift serve``)."""
    app = FastAPI(
        title="framesift",
        description="Live sources, events, kept frames and scenes of a framesift pipeline.",
        docs_url=None,  # the interactive docs load scripts from a CDN: offline, the schema is enough
        redoc_url=None,
    )
    live = pipeline is not None and hasattr(pipeline, "latest_image")
    stopping = threading.Event()

    @app.get("/healthz", response_class=Response, tags=["service"])
    def healthz() -> Response:
        ok = pipeline.healthy() if pipeline is not None else True
        return Response(
            b"ok\n" if ok else b"stopped\n", status_code=200 if ok else 503, media_type="text/plain"
        )

    if metrics is not None:

        @app.get("/metrics", response_class=Response, tags=["service"])
        def prometheus() -> Response:
            return Response(metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    if pipeline is not None:

        @app.get("/status", tags=["service"])
        def status() -> JSONResponse:
            """The pipeline's typed status (sources, stage, sinks)."""
            return JSONResponse(json.loads(json.dumps(redact_obj(pipeline.status().to_dict()), default=str)))

    if control and pipeline is not None:
        app.include_router(sources_router(pipeline))  # type: ignore[arg-type]

    if live:
        _live_routes(app, pipeline, stopping)  # type: ignore[arg-type]

    if store_dir is not None:
        from framesift.web.store_api import store_router

        app.include_router(store_router(Path(store_dir), embedder_factory, text_rate))

    if scenes_dir is not None:
        from framesift.web.scenes import scenes_router

        app.include_router(scenes_router(Path(scenes_dir)))

    @app.get("/api/info", response_model=Info, tags=["ui"])
    def info() -> Info:
        return Info(
            live=live,
            control=control,
            store=store_dir is not None,
            scenes=scenes_dir is not None,
            token=policy.token is not None,
        )

    @app.post("/api/login", responses={401: {"model": ErrorBody}}, tags=["ui"])
    def login(body: Login) -> Response:
        """Check the token and keep it in an HttpOnly, same-site cookie for the pages."""
        if not policy.token or not policy.authorized(f"Bearer {body.token}", None):
            return error(401, "wrong token")
        resp = JSONResponse({"ok": True})
        resp.set_cookie(COOKIE, body.token, httponly=True, samesite="strict", path="/")
        return resp

    for route, name in PAGE_FILES.items():
        _page(app, route, name)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return error(404, f"no static file {name!r}")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, f"not found: {request.url.path} (try /metrics, /healthz, /status or /)")

    guard = Guard(app, policy)
    guard.stopping = stopping
    return guard


def _page(app: FastAPI, route: str, name: str) -> None:
    @app.get(route, include_in_schema=False, name=f"page{route}")
    def page() -> Response:
        return FileResponse(STATIC / name, media_type="text/html", headers={"Cache-Control": "no-cache"})


def _live_routes(app: FastAPI, pipeline: SourceControl, stopping: threading.Event) -> None:
    @app.get("/api/sources/{source_id}/preview.jpg", tags=["live"], responses={404: {"model": ErrorBody}})
    async def preview(source_id: str) -> Response:
        """The source's latest frame, small."""
        image = pipeline.latest_image(source_id)
        if image is None or not isinstance(image, np.ndarray):
            return error(404, f"no frame of source {source_id!r} yet")
        body = await asyncio.to_thread(jpeg, image)
        return Response(body, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/events", tags=["live"])
    async def events(request: Request, after: int = -1, limit: int = 200) -> Response:
        """Server-sent events: every event of the pipeline as it happens (``data:`` a JSON event).
        ``after=-1`` starts with the last ``limit`` events kept."""
        log = pipeline.events
        start = max(0, log.last_seq - max(1, min(limit, 1000))) if after < 0 else after

        async def stream() -> AsyncIterator[bytes]:
            seq, idle = start, 0
            yield b"retry: 2000\n\n"
            while not stopping.is_set() and not await request.is_disconnected():
                items = log.since(seq)
                for n, ev in items:
                    doc = redact_obj(ev.to_dict()) if hasattr(ev, "to_dict") else {"type": str(ev)}
                    yield f"id: {n}\ndata: {json.dumps(doc, default=str)}\n\n".encode()
                    seq = n
                idle = 0 if items else idle + 1
                if idle and idle % 40 == 0:
                    yield b": keep-alive\n\n"
                await asyncio.sleep(SSE_POLL_S)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
