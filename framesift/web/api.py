"""The sources API (live control) with typed request and response models.

* ``GET /sources`` → :class:`SourceList`
* ``POST /sources`` with one source config as JSON (the same model as a ``sources:`` entry of the YAML
  config) → 201 :class:`SourceCreated`; 400 :class:`ErrorBody` (one line) when invalid, 409 when the id
  is taken, 503 when the pipeline takes no new sources
* ``GET /sources/{id}`` → :class:`SourceCreated`; ``DELETE /sources/{id}`` stops it, lets the stage
  drain its frames and its analyzers' ``on_end`` events, waits until the sinks delivered them, then
  answers :class:`SourceRemoved` (404 for an unknown id)

Errors are told apart by their types (:class:`~framesift.errors.SourceIdTaken`,
:class:`~framesift.errors.NotAccepting`, :class:`~framesift.errors.ConfigError`), never by message.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, ValidationError

from framesift.config import SourceConfig, format_validation_error
from framesift.errors import ConfigError, FramesiftError, NotAccepting, SourceIdTaken
from framesift.log import redact, redact_obj
from framesift.pipeline.status import SourceControl, SourceInfo

_SOURCE_ADAPTER: TypeAdapter[Any] = TypeAdapter(list[SourceConfig])  # a list: error paths lose the tag


class SourceStatus(BaseModel):
    """One source's state, rates, counters, queue and drops by cause."""

    type: str
    live: bool
    state: str
    detail: str
    fps: float
    frames_decoded: int
    frames_skipped: int
    frames_staged: int
    last_index: int
    last_frame_age_s: float | None
    reconnects: int
    queue_depth: int
    capacity: int
    on_full: str
    drops: dict[str, int]
    ended: bool
    node: str | None = None


class SourceList(BaseModel):
    sources: dict[str, SourceStatus]


class SourceCreated(BaseModel):
    id: str
    status: SourceStatus | None


class SourceRemoved(BaseModel):
    id: str
    removed: bool
    status: SourceStatus


class ErrorBody(BaseModel):
    """Every error answer: one line naming the input and the fix."""

    error: str


def parse_source(data: Any) -> Any:
    """Validate one source config (a mapping); raises ConfigError with a one-line message."""
    if not isinstance(data, dict):
        raise ConfigError('source: expected a JSON object such as {"type": "rtsp", "url": "rtsp://..."}')
    try:
        return _SOURCE_ADAPTER.validate_python([data])[0]
    except ValidationError as err:
        lines = format_validation_error(err, "source").splitlines()
        lines = [ln.replace("source: 0.", "source: ", 1).replace("source: 0:", "source:", 1) for ln in lines]
        raise ConfigError("; ".join(lines)) from None


def _status(info: SourceInfo) -> SourceStatus:
    return SourceStatus(**redact_obj(asdict(info)))


def error(code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": redact(message)}, status_code=code, headers=headers)


def _source_schema() -> dict[str, Any]:
    try:
        item = _SOURCE_ADAPTER.json_schema()
        return {"content": {"application/json": {"schema": item["items"] | {"$defs": item.get("$defs", {})}}}}
    except Exception:  # a plugin whose model has no JSON Schema: the description says what to send
        return {"content": {"application/json": {"schema": {"type": "object"}}}}


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 503)
}


def sources_router(pipeline: SourceControl) -> APIRouter:
    router = APIRouter(tags=["sources"])

    def sources() -> dict[str, SourceStatus]:
        return {sid: _status(info) for sid, info in pipeline.status().sources.items()}

    @router.get("/sources", response_model=SourceList, responses=_ERRORS)
    def list_sources() -> SourceList:
        """Every source of the running pipeline and its status."""
        return SourceList(sources=sources())

    @router.post(
        "/sources",
        status_code=201,
        response_model=SourceCreated,
        responses=_ERRORS,
        openapi_extra={"requestBody": {"required": True, **_source_schema()}},
    )
    async def add_source(request: Request) -> Any:
        """Add a source (one ``sources:`` entry of the config, as JSON) to the running pipeline."""
        body = await request.body()
        try:
            data = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return error(400, f"source: body is not JSON ({exc})")
        try:
            cfg = parse_source(data)
            sid = await asyncio.to_thread(pipeline.add_source, cfg)
        except SourceIdTaken as exc:
            return error(409, str(exc))
        except NotAccepting as exc:
            return error(503, str(exc))
        except FramesiftError as exc:
            return error(400, str(exc))
        info = pipeline.status().sources.get(sid)
        doc = SourceCreated(id=sid, status=None if info is None else _status(info))
        return JSONResponse(doc.model_dump(), status_code=201, headers={"Location": f"/sources/{sid}"})

    @router.get("/sources/{source_id}", response_model=SourceCreated, responses=_ERRORS)
    def get_source(source_id: str) -> Any:
        """One source's status."""
        info = pipeline.status().sources.get(source_id)
        if info is None:
            return error(404, f"no source {source_id!r} (GET /sources lists them)")
        return SourceCreated(id=source_id, status=_status(info))

    @router.delete("/sources/{source_id}", response_model=SourceRemoved, responses=_ERRORS)
    async def remove_source(source_id: str) -> Any:
        """Stop a source, drain its frames and events through the sinks, then answer its last status."""
        try:
            info = await asyncio.to_thread(pipeline.remove_source, source_id)
        except KeyError:
            return error(404, f"no source {source_id!r} (GET /sources lists them)")
        return SourceRemoved(id=source_id, removed=True, status=_status(info))

    return router
