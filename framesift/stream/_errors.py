"""Turning FFmpeg/OS failures into one-line SourceError/DecodeError messages that name the input and a fix."""

from __future__ import annotations

import os

import av
import av.error

from framesift.errors import DecodeError, SourceError
from framesift.log import redact

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")


def is_url(name: str) -> bool:
    return "://" in name


def check_local_file(path: str) -> None:
    """Fail early, with a precise message, for a missing, unreadable, non-regular or empty file."""
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or directory (file not found; check the path)", source=path)
    if os.path.isdir(path):
        raise SourceError(
            f"{path}: not a regular file, a directory (pass a video file; type: images reads a folder of images)",
            source=path,
        )
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: permission denied (make the file readable)", source=path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise SourceError(f"{path}: file is empty (0 bytes; re-record or re-copy it)", source=path)


def _msg(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return redact(str(text)).strip().rstrip(".")


def open_error(
    exc: BaseException, name: str, *, timeout_s: float | None = None, device: bool = False
) -> SourceError:
    """Translate an exception from ``av.open`` for input ``name`` (already redacted)."""
    url = is_url(name)
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, (av.error.ExitError, TimeoutError)):
        return SourceError(
            f"{name}: no answer within {timeout_s:g} s (check that the server is up and reachable, "
            "or raise open_timeout_s)"
            if timeout_s
            else f"{name}: timed out (check that the server is up and reachable)",
            source=name,
        )
    if isinstance(exc, ConnectionRefusedError):
        return SourceError(
            f"{name}: connection refused (is the server running? check host and port)", source=name
        )
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return SourceError(f"{name}: connection lost while opening ({_msg(exc)}; retry later)", source=name)
    if isinstance(exc, av.error.HTTPUnauthorizedError) or "401" in str(exc):
        return SourceError(f"{name}: unauthorized (check the user name and password)", source=name)
    if isinstance(exc, av.error.HTTPNotFoundError) or "404" in str(exc):
        return SourceError(f"{name}: stream not found on the server (check the path in the URL)", source=name)
    if isinstance(exc, FileNotFoundError):
        if device:
            return SourceError(
                f"{name}: capture device not found (list devices with `v4l2-ctl --list-devices`)", source=name
            )
        if url:
            return SourceError(f"{name}: not found on the server (check the URL)", source=name)
        return SourceError(f"{name}: no such file or directory (file not found; check the path)", source=name)
    if isinstance(exc, PermissionError):
        return SourceError(f"{name}: permission denied (check file or device permissions)", source=name)
    if isinstance(exc, av.error.ProtocolNotFoundError):
        return SourceError(
            f"{name}: unsupported protocol (FFmpeg here cannot open this URL scheme)", source=name
        )
    if isinstance(exc, av.error.InvalidDataError):
        if url:
            return SourceError(
                f"{name}: the server sent data FFmpeg cannot read (check the URL)", source=name
            )
        return SourceError(
            f"{name}: not a video file FFmpeg can read (invalid data; check that it is a complete video "
            "file, or re-encode it)",
            source=name,
        )
    if isinstance(exc, OSError) and getattr(exc, "errno", None) is not None and url:
        return SourceError(f"{name}: cannot connect ({_msg(exc)}; check host, port and network)", source=name)
    return SourceError(f"{name}: cannot open ({_msg(exc)})", source=name)


def no_video_error(name: str, container: av.container.InputContainer) -> DecodeError:
    kinds = (
        ", ".join(f"{s.type} {getattr(s.codec_context, 'name', '?')}" for s in container.streams) or "none"
    )
    return DecodeError(f"{name}: has no video stream (streams: {kinds}; give a file with video)", source=name)


def unsupported_codec_error(name: str, codec: str) -> DecodeError:
    return DecodeError(
        f"{name}: video codec {codec!r} is not supported by this FFmpeg build (re-encode to H.264, e.g. "
        "`ffmpeg -i IN -c:v libx264 OUT.mp4`, or check `framesift doctor` for decoders)",
        source=name,
    )
