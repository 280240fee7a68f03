"""Build a :class:`~framesift.stream.base.Source` from its config."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from framesift.config.sources import SourceSpec
from framesift.errors import ConfigError, SourceError
from framesift.log import redact, register_url_secrets
from framesift.stream.base import Source

log = logging.getLogger(__name__)

_BAD = re.compile(r"[^A-Za-z0-9_.:-]+")


def _clean(text: str) -> str:
    out = _BAD.sub("_", text).strip("_.")
    return out or "source"


def source_id_for(cfg: SourceSpec) -> str:
    """The configured ``id``, else one derived from the input: ``host_path`` of a URL (never user
    name or password), an image folder's name, or a file's or device's stem."""
    if cfg.id:
        return cfg.id
    inp = cfg.input()
    if "://" in inp:
        return _url_id(inp)
    return path_id(inp, cfg.type_name())


def path_id(inp: str, kind: str = "file") -> str:
    """The id of a local input: a folder's name (for a glob, the folder it searches), else the
    file's or device's stem, made safe. A file that exists is named as it is, glob characters and
    all (``clip[1].mp4`` → ``clip_1``)."""
    base = inp
    while base.endswith("/") or (
        any(ch in os.path.basename(base) for ch in "*?[") and not os.path.exists(base)
    ):
        base = os.path.dirname(base.rstrip("/")) if not base.endswith("/") else base.rstrip("/")
    if kind == "images" or os.path.isdir(base):
        return _clean(os.path.basename(base) or kind)
    return _clean(Path(base).stem or kind)


def file_ids(paths: Sequence[str]) -> list[str]:
    """The ids one pipeline over the files ``paths`` gives them (so that worker processes, each
    running one of them, name their outputs alike)."""
    return numbered([path_id(p) for p in paths])


def numbered(ids: Sequence[str], configured: Sequence[bool] | None = None) -> list[str]:
    """``ids`` with ``-2``, ``-3``... added to repeats, in order; ConfigError (one line) for a
    ``configured`` id used twice."""
    seen: dict[str, int] = {}
    out = []
    for k, sid in enumerate(ids):
        if sid in seen:
            if configured is not None and configured[k]:
                raise ConfigError(f"sources: id {sid!r} is used twice (ids must be unique)")
            seen[sid] += 1
            sid = f"{sid}-{seen[sid]}"
        seen.setdefault(sid, 1)
        out.append(sid)
    return out


def _url_id(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "stream"
    try:
        port = parts.port
    except ValueError:  # the config's URL check refuses it; an id is still made, never a traceback
        port = None
    if port:
        host = f"{host}:{port}"
    path = parts.path.strip("/")
    return _clean(f"{host}_{path}" if path else host)


def _cheap_codec(cfg: SourceSpec) -> str | None:
    """The codec of a local file's first video stream (reading its header is cheap), else None."""
    if cfg.live or "://" in cfg.input() or not os.path.isfile(cfg.input()):
        return None
    try:
        import av

        with av.open(cfg.input()) as container:
            if container.streams.video:
                return str(container.streams.video[0].codec_context.name)
    except Exception:  # unreadable files are reported by the source's own open()
        return None
    return None


def resolve_decoder(cfg: SourceSpec, source_id: str | None = None) -> tuple[str, str]:
    """``(decoder, reason)`` for ``cfg``: ``decoder: auto`` resolved with :func:`framesift.gpu.select_decoder`.

    An explicit GPU decoder that cannot run raises a one-line SourceError naming the input.
    """
    from framesift.gpu import probe_gpu, select_decoder

    name = redact(cfg.input())
    if cfg.shot_frames and cfg.decoder == "auto":
        return "pyav", "shot_frames: TransNetV2's 48x27 frames come from FFmpeg's CPU scaler"
    if cfg.full_pictures and cfg.decoder == "auto":
        return "pyav", "full_pictures: full-size pictures are converted on the CPU when asked for"
    gpu = probe_gpu()
    # The codec only matters when an NVDEC path could be chosen: don't open anything otherwise.
    codec = _cheap_codec(cfg) if cfg.decoder == "auto" and gpu.cuda else None
    try:
        choice = select_decoder(cfg.decoder, source_type=cfg.type_name(), codec=codec, gpu=gpu)
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


def build_source(cfg: SourceSpec, source_id: str | None = None, *, gpu_frames: bool = False) -> Source:
    """A ready-to-open source for ``cfg``, built by the implementation its model names.

    ``gpu_frames=True`` asks GPU decoders to hand out CUDA tensors (for engines that take them); by
    default every source yields numpy images.
    """
    sid = source_id or source_id_for(cfg)
    if "://" in cfg.input():
        register_url_secrets(cfg.input())  # a camera password is masked wherever it shows up
    impl = type(cfg).implementation_target()
    source: Source = impl(cfg, sid, gpu_frames=gpu_frames)
    return source


def decoded_source(cfg: SourceSpec, source_id: str, *, gpu_frames: bool = False) -> Source:
    """A video source on the decoder ``cfg.decoder`` picks; logs one INFO line saying which and why.

    ``decoder: auto`` picks NVDEC (``pyav-cuda``, then ``nvcodec``) when it can run here, else PyAV on
    the CPU.
    """
    decoder, reason = resolve_decoder(cfg, source_id)
    log.info("source %s: decoder %s (%s)", source_id, decoder, reason)
    if decoder == "opencv":
        from framesift.stream.opencv_source import OpenCVSource

        return OpenCVSource(cfg, source_id)  # type: ignore[arg-type]
    if decoder == "pyav-cuda":
        from framesift.stream.pyav_cuda_source import PyAVCudaSource

        return PyAVCudaSource(cfg, source_id, gpu_frames=gpu_frames)  # type: ignore[arg-type]
    if decoder == "nvcodec":
        from framesift.stream.nvcodec_source import NvCodecSource

        return NvCodecSource(cfg, source_id, gpu_frames=gpu_frames)  # type: ignore[arg-type]
    from framesift.stream.pyav_source import PyAVSource

    return PyAVSource(cfg, source_id)  # type: ignore[arg-type]
