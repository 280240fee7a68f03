"""Build a :class:`~framesift.stream.base.Source` from its config."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from framesift.config.sources import (
    DeviceSourceConfig,
    FileSourceConfig,
    HttpSourceConfig,
    ImagesSourceConfig,
    RtspSourceConfig,
    SourceConfig,
)
from framesift.errors import SourceError
from framesift.stream.base import Source

_BAD = re.compile(r"[^A-Za-z0-9_.:-]+")


def _clean(text: str) -> str:
    out = _BAD.sub("_", text).strip("_.")
    return out or "source"


def source_id_for(cfg: SourceConfig) -> str:
    """The configured ``id``, else one derived from the input: a file's stem, ``host_path`` of a URL
    (never user name or password), a device's name, an image folder's name."""
    if cfg.id:
        return cfg.id
    if isinstance(cfg, FileSourceConfig):
        if "://" in cfg.path:
            return _url_id(cfg.path)
        return _clean(Path(cfg.path).stem)
    if isinstance(cfg, (RtspSourceConfig, HttpSourceConfig)):
        return _url_id(cfg.url)
    if isinstance(cfg, DeviceSourceConfig):
        return _clean(os.path.basename(cfg.device.rstrip("/")) or cfg.device)
    if isinstance(cfg, ImagesSourceConfig):
        base = cfg.path
        while any(ch in os.path.basename(base) for ch in "*?[") or base.endswith("/"):
            base = os.path.dirname(base.rstrip("/")) if not base.endswith("/") else base.rstrip("/")
        return _clean(os.path.basename(base) or "images")
    raise TypeError(f"unknown source config {type(cfg).__name__}")  # pragma: no cover


def _url_id(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "stream"
    if parts.port:
        host = f"{host}:{parts.port}"
    path = parts.path.strip("/")
    return _clean(f"{host}_{path}" if path else host)


def _decoder_unavailable(decoder: str) -> SourceError:
    why = "GPU decoding is not implemented in this framesift version yet (it comes with the GPU issue)"
    if not os.path.exists("/dev/nvidiactl"):
        why += " and no NVIDIA GPU was found"
    return SourceError(
        f"decoder {decoder!r} is not available on this machine: {why}; use decoder: auto (PyAV) or opencv"
    )


def build_source(cfg: SourceConfig, source_id: str | None = None) -> Source:
    """A ready-to-open source for ``cfg`` (``decoder: auto`` picks PyAV)."""
    sid = source_id or source_id_for(cfg)
    if cfg.decoder in ("pyav-cuda", "nvcodec"):
        raise _decoder_unavailable(cfg.decoder)
    if isinstance(cfg, ImagesSourceConfig):
        from framesift.stream.images import ImagesSource

        return ImagesSource(cfg, sid)
    if cfg.decoder == "opencv":
        from framesift.stream.opencv_source import OpenCVSource

        return OpenCVSource(cfg, sid)
    from framesift.stream.pyav_source import PyAVSource

    return PyAVSource(cfg, sid)
