"""Turning FFmpeg/OS failures into one-line SourceError/DecodeError messages that name the input and a fix."""

from __future__ import annotations

import os
import re
import stat
from typing import Any

import av
import av.error

from framesift.errors import DecodeError, SourceError
from framesift.log import redact

ATTACHED_PIC = 1024  # FFmpeg's AV_DISPOSITION_ATTACHED_PIC: a still picture stored with the file

NETWORK_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://", "srt://")


def is_url(name: str) -> bool:
    return "://" in name


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_local_file(path: str) -> None:
    """Fail early, with a precise message, for a missing, unreadable, non-regular or empty file.

    Only regular files are read: FFmpeg would block forever on a FIFO with no writer, read a device
    node as an endless stream, and cannot read a directory or a socket.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(
            f"{path}: no such file or directory (file not found; check the path)", source=path
        ) from None
    except PermissionError:
        raise SourceError(
            f"{path}: permission denied (make the file and its folders readable)", source=path
        ) from None
    except (OSError, ValueError) as exc:  # a symlink loop, a name too long, a NUL in the name...
        raise SourceError(f"{path}: cannot read ({reason(exc)}; check the path)", source=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(
            f"{path}: is a directory, not a video file (not a regular file; type: images reads a folder of images)",
            source=path,
        )
    for test, kind in _KINDS:
        if test(st.st_mode):
            hint = (
                "for a camera use type: device"
                if test in (stat.S_ISCHR, stat.S_ISBLK)
                else "to read from another program, serve its output over RTSP or HTTP, or write a file"
            )
            raise SourceError(
                f"{path}: is {kind}, not a video file (give a regular file; {hint})", source=path
            )
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path}: is not a regular file (give a video file)", source=path)
    if not os.access(path, os.R_OK):
        raise SourceError(f"{path}: permission denied (make the file readable)", source=path)
    if st.st_size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes; re-record or re-copy it)", source=path)


_ERRNO = re.compile(r"\[Errno -?\d+\]\s*")
#: Reasons worded for people where FFmpeg's own text is unclear.
_REASONS = {
    av.error.PatchWelcomeError: "a feature FFmpeg does not implement",
    av.error.DecoderNotFoundError: "no decoder for this codec",
    av.error.BugError: "an internal FFmpeg error",
    av.error.ExitError: "interrupted (timed out or stopped)",
    av.error.ExternalError: "an error in an external library",
}


def reason(exc: BaseException) -> str:
    """Why ``exc`` happened, for a message: FFmpeg's or the OS's words without errno numbers
    (``[Errno 1094995529]``), file names or log dumps, credentials redacted, at most 200 characters."""
    text: str | None = None
    for cls, words in _REASONS.items():
        if isinstance(exc, cls):
            text = words
    if text is None and isinstance(exc, (OSError, av.error.FFmpegError)):
        text = exc.strerror  # the reason alone, without errno and file name
    if not text:
        text = str(exc) or type(exc).__name__
    text = _ERRNO.sub("", str(text)).split("; last error log:")[0]
    text = " ".join(text.split()).strip().rstrip(".")
    if len(text) > 200:
        text = text[:200] + "..."
    return redact(text) or type(exc).__name__


def _http_status(exc: BaseException, code: str) -> bool:
    """True when FFmpeg's reason for ``exc`` names the HTTP status ``code`` (not a file name or errno)."""
    return re.search(rf"(?<![0-9]){code}(?![0-9])", reason(exc)) is not None


def open_error(
    exc: BaseException,
    name: str,
    *,
    timeout_s: float | None = None,
    device: bool = False,
    timeout_option: str = "open_timeout_s",
) -> SourceError:
    """Translate an exception from ``av.open`` for input ``name`` (already redacted);
    ``timeout_option`` is what the user raises when the timeout was too short."""
    url = is_url(name)
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, (av.error.ExitError, TimeoutError)):
        return SourceError(
            f"{name}: no answer within {timeout_s:g} s (check that the server is up and reachable, "
            f"or raise {timeout_option})"
            if timeout_s
            else f"{name}: timed out (check that the server is up and reachable)",
            source=name,
        )
    if isinstance(exc, ConnectionRefusedError):
        return SourceError(
            f"{name}: connection refused (is the server running? check host and port)", source=name
        )
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return SourceError(f"{name}: connection lost while opening ({reason(exc)}; retry later)", source=name)
    if isinstance(exc, av.error.HTTPUnauthorizedError) or _http_status(exc, "401"):
        return SourceError(f"{name}: unauthorized (check the user name and password)", source=name)
    if isinstance(exc, av.error.HTTPNotFoundError) or _http_status(exc, "404"):
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
        return SourceError(
            f"{name}: cannot connect ({reason(exc)}; check host, port and network)", source=name
        )
    return SourceError(f"{name}: cannot open ({reason(exc)})", source=name)


def _cover_art(stream: Any) -> bool:
    return bool(int(getattr(stream, "disposition", 0) or 0) & ATTACHED_PIC)


def video_stream(name: str, container: av.container.InputContainer) -> Any:
    """The first video stream of ``container`` that is not a picture attached to the file (an
    album's cover art is one image, not a video); DecodeError (one line) when there is none."""
    for s in container.streams.video:
        if not _cover_art(s):
            return s
    raise no_video_error(name, container)


def no_video_error(name: str, container: av.container.InputContainer) -> DecodeError:
    kinds = (
        ", ".join(
            f"{s.type} {getattr(s.codec_context, 'name', '?')}{' (cover art)' if _cover_art(s) else ''}"
            for s in container.streams
        )
        or "none"
    )
    return DecodeError(f"{name}: has no video stream (streams: {kinds}; give a file with video)", source=name)


def unsupported_codec_error(name: str, codec: str) -> DecodeError:
    return DecodeError(
        f"{name}: video codec {codec!r} is not supported by this FFmpeg build (re-encode to H.264, e.g. "
        "`ffmpeg -i IN -c:v libx264 OUT.mp4`, or check `framesift doctor` for decoders)",
        source=name,
    )
