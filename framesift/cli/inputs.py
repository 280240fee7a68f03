"""What the commands accept as a SOURCE: a video file, a folder of images or a glob pattern, an
``rtsp://`` or ``http(s)://`` URL."""

from __future__ import annotations

import os
from typing import Any

from framesift.errors import ConfigError


def source_config(
    src: str, *, fps: float | None = None, realtime: bool = False, **options: Any
) -> dict[str, Any]:
    """A command-line SOURCE → a source config mapping (file path, folder or glob of images,
    rtsp://, http(s)://)."""
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
    if is_image_set(src):
        if realtime or common.get("shot_frames"):
            why = "--realtime replays a video" if realtime else "TransNetV2 finds shots in a video"
            raise ConfigError(f"{src}: a folder of images has no frame timing ({why}); drop that option")
        return {"type": "images", "path": src, **common}
    return {"type": "file", "path": src, "realtime": realtime, **common}


def analysis_frames(source: dict[str, Any], embedder: str) -> dict[str, Any]:
    """With the ``pixel`` embedder (``embedder``: its name), a video file's source config decoded as
    ``framesift scenes`` decodes it for the pixel signal (the ``fast`` scaler, 256 wide asked:
    320x180 from 1280x720), each frame's full-size picture converted only when the collector asks
    for it (its candidates, a few a second): the pixel embedder needs no more, and ``collect`` of a
    720p file ran at 0.87x a bare decode instead of 0.75x (bench/RESULTS.md). Other embedders and
    sources, files already given a size, and files under twice 256 wide are returned as they are."""
    from framesift.scenes.detect import analysis_size_of
    from framesift.stream.headers import frame_size
    from framesift.stream.scale import fast_size

    if embedder != "pixel" or source.get("type") != "file" or "width" in source or "height" in source:
        return source
    full = frame_size(source["path"])
    size = None if full is None else analysis_size_of(full)
    if size is None or full is None or fast_size(*full, *size) == full:  # no smaller than it is
        return source
    return {**source, "width": size[0], "height": size[1], "scaler": "fast", "full_pictures": True}


def is_image_set(src: str) -> bool:
    """``src`` names a folder, or is a glob pattern (``shots/*.jpg``) that names no file itself:
    read as ``type: images`` (the images in name order)."""
    if "://" in src:
        return False
    return os.path.isdir(src) or (any(c in src for c in "*?[") and not os.path.exists(src))


def check_input(src: str) -> None:
    """Fail before any work, in one line, on a local file that cannot be read (URLs are tried later)."""
    if "://" not in src and not is_image_set(src):  # a folder's images are checked one by one
        from framesift.stream._errors import check_local_file

        check_local_file(src)
