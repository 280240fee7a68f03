"""The kept-frame store over HTTP: a filtered gallery, images and thumbnails, text search (rate
limited), image search, "more like this" and the dataset map (:mod:`framesift.web.maps`).

Scores are the engine's own cosines (:func:`framesift.store.search.top_k`). The store is opened
read-only per request; the embedder that filled it is built once, on the first search.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from framesift.errors import ConfigError, FramesiftError
from framesift.store.index import FrameStore, StoredFrame
from framesift.store.search import embedder_for_store, store_model, top_k
from framesift.web.api import ErrorBody, error
from framesift.web.app_common import jpeg

MAX_K = 200


class FrameDoc(BaseModel):
    id: str
    source: str
    wallclock: float
    time: float
    reason: str
    scores: dict[str, float]
    width: int
    height: int
    image: str
    thumb: str


class FramePage(BaseModel):
    total: int
    frames: list[FrameDoc]


class HitDoc(BaseModel):
    score: float
    frame: FrameDoc


class StoreInfo(BaseModel):
    count: int
    sources: list[str]
    reasons: list[str]
    models: list[str]


def frame_doc(rec: StoredFrame) -> FrameDoc:
    return FrameDoc(
        id=rec.id,
        source=rec.source,
        wallclock=rec.wallclock,
        time=rec.time,
        reason=rec.reason,
        scores=rec.scores,
        width=rec.width,
        height=rec.height,
        image=f"/api/frames/{rec.id}/image",
        thumb=f"/api/frames/{rec.id}/thumb.jpg",
    )


class RateLimit:
    """At most ``count`` calls per ``window_s`` (a sliding window over all clients)."""

    def __init__(self, count: int, window_s: float) -> None:
        self.count, self.window_s = count, window_s
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._calls and now - self._calls[0] > self.window_s:
                self._calls.popleft()
            if len(self._calls) >= self.count:
                return False
            self._calls.append(now)
            return True


def store_router(
    root: Path, embedder_factory: Callable[[], Any] | None, text_rate: tuple[int, float]
) -> APIRouter:
    router = APIRouter(tags=["store"])
    limit = RateLimit(*text_rate)
    engine: dict[str, Any] = {}
    engine_lock = threading.Lock()

    def open_store() -> FrameStore:
        return FrameStore(root, readonly=True).open()

    def embedder(store: FrameStore, model: str) -> Any:
        with engine_lock:
            if model not in engine:
                engine[model] = embedder_factory() if embedder_factory else embedder_for_store(store, model)
            return engine[model]

    def hits(store: FrameStore, query: np.ndarray, model: str, k: int, source: str | None) -> list[HitDoc]:
        out = []
        for fid, score in top_k(store, query, max(1, min(k, MAX_K)), model=model, source=source):
            rec = store.get(fid)
            if rec is not None:
                out.append(HitDoc(score=score, frame=frame_doc(rec)))
        return out

    def run(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except FramesiftError as exc:
            return error(400, str(exc))

    @router.get("/api/store", response_model=StoreInfo, responses={400: {"model": ErrorBody}})
    async def info() -> Any:
        """What the store holds: frame count, sources, keep reasons, embedding models."""

        def work() -> StoreInfo:
            with open_store() as store:
                recs = store.records()
                return StoreInfo(
                    count=len(recs),
                    sources=store.sources(),
                    reasons=sorted({r.reason for r in recs}),
                    models=store.models(),
                )

        return await asyncio.to_thread(run, work)

    @router.get("/api/frames", response_model=FramePage, responses={400: {"model": ErrorBody}})
    async def frames(
        source: str | None = None,
        reason: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 60,
        offset: int = 0,
    ) -> Any:
        """Kept frames, newest first, filtered by source, keep reason and capture time (Unix seconds)."""

        def work() -> FramePage:
            with open_store() as store:
                recs = store.records(source=source or None, since=since)
            recs = [
                r
                for r in recs
                if (not reason or r.reason == reason) and (until is None or r.wallclock <= until)
            ]
            recs.reverse()
            n = max(1, min(limit, 500))
            return FramePage(
                total=len(recs), frames=[frame_doc(r) for r in recs[max(0, offset) : max(0, offset) + n]]
            )

        return await asyncio.to_thread(run, work)

    def record(frame_id: str) -> tuple[StoredFrame, Path] | None:
        with open_store() as store:
            rec = store.get(frame_id)
            path = None if rec is None else store.path_of(rec)
        return None if rec is None or path is None or not path.is_file() else (rec, path)

    @router.get("/api/frames/{frame_id}/image", responses={404: {"model": ErrorBody}})
    async def image(frame_id: str) -> Response:
        found = await asyncio.to_thread(record, frame_id)
        if found is None:
            return error(404, f"no kept frame {frame_id!r}")
        return FileResponse(found[1], headers={"Cache-Control": "private, max-age=3600"})

    @router.get("/api/frames/{frame_id}/thumb.jpg", responses={404: {"model": ErrorBody}})
    async def thumb(frame_id: str) -> Response:
        def work() -> bytes | None:
            found = record(frame_id)
            if found is None:
                return None
            img = cv2.imread(str(found[1]), cv2.IMREAD_COLOR)
            return None if img is None else jpeg(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), max_side=240)

        body = await asyncio.to_thread(work)
        if body is None:
            return error(404, f"no kept frame {frame_id!r}")
        return Response(body, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @router.get(
        "/api/search/text",
        response_model=list[HitDoc],
        responses={400: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    )
    async def search_text(q: str, k: int = 24, source: str | None = None) -> Any:
        """Frames ranked by the engine's cosine to a text prompt (rate limited)."""
        if not q.strip():
            return error(400, "search: the text query is empty")
        if not limit.allow():
            return error(
                429,
                f"text search: over {limit.count} searches in {limit.window_s:.0f}s; wait a moment",
                {"Retry-After": str(int(limit.window_s))},
            )

        def work() -> list[HitDoc]:
            with open_store() as store:
                model = store_model(store)
                emb = embedder(store, model)
                if not emb.supports_text:
                    raise ConfigError(
                        f"the store was built with the {model!r} embedder, which has no text tower: "
                        "search by image, or collect with a CLIP model"
                    )
                return hits(store, emb.embed_texts([q[:1000]])[0], model, k, source or None)

        return await asyncio.to_thread(run, work)

    @router.post("/api/search/image", response_model=list[HitDoc], responses={400: {"model": ErrorBody}})
    async def search_image(request: Request, k: int = 24, source: str | None = None) -> Any:
        """Frames ranked by cosine to an uploaded image (the body: JPEG/PNG/WebP bytes)."""
        data = await request.body()

        def work() -> Any:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
            if img is None:
                return error(400, "image search: the body is not a JPEG, PNG or WebP image")
            with open_store() as store:
                model = store_model(store)
                q = embedder(store, model).embed_images([cv2.cvtColor(img, cv2.COLOR_BGR2RGB)])[0]
                return hits(store, q, model, k, source or None)

        return await asyncio.to_thread(run, work)

    @router.get(
        "/api/frames/{frame_id}/similar", response_model=list[HitDoc], responses={404: {"model": ErrorBody}}
    )
    async def similar(frame_id: str, k: int = 24) -> Any:
        """More like this: frames ranked by cosine to a kept frame's stored embedding."""

        def work() -> Any:
            with open_store() as store:
                rec = store.get(frame_id)
                if rec is None or rec.model is None:
                    return error(404, f"no kept frame {frame_id!r} with an embedding")
                for ids, mat in store.iter_embeddings(model=rec.model):
                    if frame_id in ids:
                        return hits(store, mat[ids.index(frame_id)], rec.model, k, None)
            return error(404, f"no embedding for kept frame {frame_id!r}")

        return await asyncio.to_thread(run, work)

    @router.get("/api/map", responses={400: {"model": ErrorBody}})
    async def dataset_map() -> Any:
        """The store's embeddings on a 2-D map (cached): points, clusters, outliers, near-duplicates."""
        from framesift.web.maps import store_map

        return await asyncio.to_thread(run, lambda: store_map(root))

    return router
