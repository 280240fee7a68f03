"""Scenes reports (what ``framesift scenes`` wrote) under one folder: listed, and served read-only
with a sandboxing Content-Security-Policy (the reports are standalone HTML with inline styles)."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from framesift.store.paths import inside
from framesift.web.api import error
from framesift.web.security import REPORT_CSP

SERVED = {".html", ".csv", ".json", ".edl", ".jpg", ".jpeg", ".png", ".webp", ".mp4", ".txt"}


class Report(BaseModel):
    """One HTML report and the files beside it."""

    name: str
    url: str
    files: list[str]


def scenes_router(root: Path) -> APIRouter:
    router = APIRouter(tags=["scenes"])

    @router.get("/api/scenes", response_model=list[Report])
    def reports() -> list[Report]:
        """Every HTML report under the folder (newest first)."""
        found = sorted(root.rglob("*.html"), key=lambda p: p.stat().st_mtime, reverse=True)[:500]
        out = []
        for html in found:
            rel = html.relative_to(root).as_posix()
            files = sorted(
                p.name for p in html.parent.iterdir() if p.is_file() and p.suffix.lower() in SERVED
            )
            out.append(Report(name=rel, url=f"/scenes/files/{rel}", files=files[:200]))
        return out

    @router.get("/scenes/files/{rel:path}")
    def report_file(rel: str) -> Response:
        path = inside(root, rel)
        if path is None or not path.is_file() or path.suffix.lower() not in SERVED:
            return error(404, f"no report file {rel!r} under the scenes folder")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=ctype, headers={"Content-Security-Policy": REPORT_CSP})

    return router
