"""Build a :class:`~framesift.stream.base.Source` from its config."""

from __future__ import annotations

import logging
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
from framesift.log import redact, register_url_secrets
from framesift.stream.base import Source

log = logging.getLogger(__name__)

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


def _input_of(cfg: SourceConfig) -> str:
    if isinstance(cfg, (RtspSourceConfig, HttpSourceConfig)):
        return cfg.url
    if isinstance(cfg, DeviceSourceConfig):
        return cfg.device
    return cfg.path


def _cheap_codec(cfg: SourceConfig) -> str | None:
    """The codec of a local file's first video stream (reading its header is cheap), else None."""
    if not isinstance(cfg, FileSourceConfig) or "://" in cfg.path or not os.path.isfile(cfg.path):
        return None
    try:
        import av

        with av.open(cfg.path) as container:
            if container.streams.video:
                return str(container.streams.video[0].codec_context.name)
    except Exception:  # unreadable files are reported by the source's own open()
        return None
    return None


def resolve_decoder(cfg: SourceConfig, source_id: str | None = None) -> tuple[str, str]:
    """``(decoder, reason)`` for ``cfg``: ``decoder: auto`` resolved with :func:`framesift.gpu.select_decoder`.

    An explicit GPU decoder that cannot run raises a one-line SourceError naming the input.
    """
    from framesift.gpu import probe_gpu, select_decoder

    name = redact(_input_of(cfg))
    gpu = probe_gpu()
    # The codec only matters when an NVDEC path could be chosen: don't open anything otherwise.
    codec = _cheap_codec(cfg) if cfg.decoder == "auto" and gpu.cuda else None
    try:
        choice = select_decoder(cfg.decoder, source_type=cfg.type, codec=codec, gpu=gpu)
    except SourceError as exc:
        raise SourceError(f"{name}: {exc}", source=source_id) from None
    decoder, reason = choice.name, choice.reason
    if decoder == "nvcodec":
        from framesift.stream.nvcodec_source import unsupported_features  # imports no GPU library

        missing = unsupported_features(cfg)
        if missing and cfg.decoder == "nvcodec":
            raise SourceError(
                f"{name}: decoder 'nvcodec' does not support {', '.join(missing)}; "
                "use decoder: pyav-cuda or pyav",
                source=source_id,
            )
        if missing:
            decoder, reason = "pyav", f"CPU decode: nvcodec does not support {', '.join(missing)}; {reason}"
    return decoder, reason


def build_source(cfg: SourceConfig, source_id: str | None = None, *, gpu_frames: bool = False) -> Source:
    """A ready-to-open source for ``cfg``; logs one INFO line saying which decoder runs and why.

    ``decoder: auto`` picks NVDEC (``pyav-cuda``, then ``nvcodec``) when it can run here, else PyAV on
    the CPU. ``gpu_frames=True`` asks the GPU decoders to hand out CUDA tensors (for engines that take
    them); by default every source yields numpy images.
    """
    sid = source_id or source_id_for(cfg)
    if isinstance(cfg, (RtspSourceConfig, HttpSourceConfig)):
        register_url_secrets(cfg.url)
    elif isinstance(cfg, FileSourceConfig) and "://" in cfg.path:
        register_url_secrets(cfg.path)
    decoder, reason = resolve_decoder(cfg, sid)
    log.info("source %s: decoder %s (%s)", sid, decoder, reason)
    if isinstance(cfg, ImagesSourceConfig):
        from framesift.stream.images import ImagesSource

        return ImagesSource(cfg, sid)
    if decoder == "opencv":
        from framesift.stream.opencv_source import OpenCVSource

        return OpenCVSource(cfg, sid)
    if decoder == "pyav-cuda":
        from framesift.stream.pyav_cuda_source import PyAVCudaSource

        return PyAVCudaSource(cfg, sid, gpu_frames=gpu_frames)
    if decoder == "nvcodec":
        from framesift.stream.nvcodec_source import NvCodecSource

        assert isinstance(cfg, (FileSourceConfig, RtspSourceConfig, HttpSourceConfig))
        return NvCodecSource(cfg, sid, gpu_frames=gpu_frames)
    from framesift.stream.pyav_source import PyAVSource

    return PyAVSource(cfg, sid)
