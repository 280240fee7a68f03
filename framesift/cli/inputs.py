"""What the commands accept as a SOURCE: a file path, ``rtsp://`` or ``http(s)://`` URL."""

from __future__ import annotations

from typing import Any

from framesift.errors import ConfigError


def source_config(
    src: str, *, fps: float | None = None, realtime: bool = False, **options: Any
) -> dict[str, Any]:
    """A command-line SOURCE → a source config mapping (file path, rtsp://, http(s)://)."""
    common: dict[str, Any] = dict(options)
    if fps is not None:
        common["target_fps"] = fps
    low = src.lower()
    if low.startswith(("rtsp://", "rtsps://")):
        return {"type": "rtsp", "url": src, **common}
    if low.startswith(("http://", "https://")):
        return {"type": "http", "url": src, **common}
    if "://" in src:
        raise ConfigError(f"{src}: unsupported URL scheme (use a file path, rtsp:// or http(s)://)")
    return {"type": "file", "path": src, "realtime": realtime, **common}


def check_input(src: str) -> None:
    """Fail before any work, in one line, on a local file that cannot be read (URLs are tried later)."""
    if "://" not in src:
        from framesift.stream._errors import check_local_file

        check_local_file(src)
