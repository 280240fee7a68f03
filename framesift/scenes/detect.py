"""Scenes of video files, found by the pipeline every command runs: file sources decoding small
frames (FFmpeg's fast path) → the ``scene_change`` analyzer with ``report`` on → the ``scene_report``
sink."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.config import PipelineConfig, parse_config
from framesift.config.sources import MAX_SIDE, MIN_SIDE
from framesift.engines.base import Embedder
from framesift.errors import DecodeError
from framesift.pipeline import Pipeline
from framesift.scenes.model import SceneList
from framesift.sinks.scene_report import SceneReportConfig, SceneReportSink
from framesift.stream.headers import frame_size

DECODE_WIDTH = 256  # the pixel signal needs far less; thumbnails and CLIP crops come from this too
SHOT_ONLY_WIDTH = 64  # mode transnet writing no pictures: TransNetV2 reads its own 48x27 frames


def analysis_width(cfg: SceneChangeConfig, *, pictures: bool) -> int:
    """The width of the frames scenes are found on: :data:`SHOT_ONLY_WIDTH` where TransNetV2 alone
    finds them, no CLIP label is asked for and no picture is kept (its 48x27 frames come from their
    own scaler: 0.4 ms less per 1280x720 frame), else :data:`DECODE_WIDTH`."""
    if cfg.mode == "transnet" and not pictures and not cfg.uses_embedder():
        return SHOT_ONLY_WIDTH
    return DECODE_WIDTH


def analysis_size(path: str, target: int = DECODE_WIDTH) -> tuple[int, int] | None:
    """The small frame size scenes are found on: ``target`` wide (even height, aspect kept), or the
    video's own size when it is narrower; None when the header says nothing. Both sides stay within
    :data:`~framesift.config.sources.MIN_SIDE`..:data:`~framesift.config.sources.MAX_SIDE`: a panorama's height is raised to the minimum (the picture is
    stretched a little), a very tall video is narrowed so its height fits the maximum."""
    size = frame_size(path)
    return None if size is None else analysis_size_of(size, target)


def analysis_size_of(size: tuple[int, int], target: int = DECODE_WIDTH) -> tuple[int, int] | None:
    """:func:`analysis_size` of a video shown ``size`` (width, height) big."""
    target = min(MAX_SIDE, max(MIN_SIDE, target))
    if size[0] <= target:
        return None
    w, h = size
    height = h * target / w
    if height > MAX_SIDE:
        return max(MIN_SIDE, _even(w * MAX_SIDE / h)), MAX_SIDE
    return target, min(MAX_SIDE, max(MIN_SIDE, _even(height)))


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


def scene_source(
    path: str,
    *,
    source_id: str | None = None,
    decode_width: int = DECODE_WIDTH,
    fast_decode: bool = True,
    shot_frames: bool = False,
    max_frames: int | None = None,
) -> dict[str, Any]:
    """The source config scene detection decodes ``path`` with; ``shot_frames`` adds TransNetV2's
    48x27 frames (FFmpeg's bicubic scaler, from the same decode) and decodes the codec in full, as
    the reference does."""
    fast_decode = fast_decode and not shot_frames
    src: dict[str, Any] = {"type": "file", "path": path, "scaler": "fast", "fast_decode": fast_decode}
    if shot_frames:
        src["shot_frames"] = True
    if max_frames is not None:
        src["max_frames"] = max_frames
    if source_id:
        src["id"] = source_id
    size = analysis_size(path, decode_width)
    if size is not None:
        src["width"], src["height"] = size
    return src


def scene_pipeline(
    videos: Sequence[str],
    cfg: SceneChangeConfig,
    *,
    sinks: Sequence[dict[str, Any]] = (),
    engine: dict[str, Any] | None = None,
    decode_width: int | None = None,
    pictures: bool = True,
    fast_decode: bool = True,
    max_frames: int | None = None,
    ids: Sequence[str] | None = None,
) -> PipelineConfig:
    """The pipeline config of scene detection over ``videos``; ``pictures``: thumbnails or the
    HTML report are written; ``decode_width`` None: :func:`analysis_width`. ``ids``: the videos'
    source ids (what their outputs are called), else each file's stem taken literally, made safe
    and numbered when repeated (:func:`framesift.stream.factory.file_ids`)."""
    from framesift.stream.factory import file_ids

    shots = cfg.mode in ("transnet", "ensemble")
    width = decode_width or analysis_width(cfg, pictures=pictures)
    names = list(ids) if ids is not None else file_ids(videos)
    return parse_config(
        {
            "sources": [
                scene_source(
                    v,
                    source_id=sid,
                    decode_width=width,
                    fast_decode=fast_decode,
                    shot_frames=shots,
                    max_frames=max_frames,
                )
                for v, sid in zip(videos, names, strict=True)
            ],
            "analyzers": [cfg.model_copy(update={"report": True}).model_dump()],
            "sinks": list(sinks),
            "engine": engine or {"model": "pixel"},
            "stage": {"max_batch": 32, "max_wait_ms": 50},
            "metrics": {"enabled": False},
        },
        where="scenes",
    )


def detect_scenes(
    path: str | Path,
    *,
    config: SceneChangeConfig | None = None,
    embedder: Embedder | None = None,
    decode_width: int | None = None,
    thumbnails: bool = False,
    fast_decode: bool = True,
    max_frames: int | None = None,
) -> SceneList:
    """Scenes of one video file (no files written).

    ``config`` is the analyzer configuration (mode, thresholds, labels); ``embedder`` is the CLIP
    embedder ``clip``/``hybrid`` modes and labels use. ``thumbnails`` keeps one JPEG per scene.
    ``fast_decode`` skips the codec's in-loop deblocking filter (H.264/HEVC: about a quarter less
    decoding time; the small analysis frames do not see the difference).
    """
    cfg = config or SceneChangeConfig()
    pipeline_cfg = scene_pipeline(
        [str(path)],
        cfg,
        decode_width=decode_width,
        pictures=thumbnails,
        fast_decode=fast_decode,
        max_frames=max_frames,
    )
    sink = SceneReportSink(
        SceneReportConfig(dir=".", thumbnails=thumbnails, html=False), keep=True, write=False, mode=cfg.mode
    )
    Pipeline(pipeline_cfg, embedder=embedder, sinks=[sink]).run()
    if not sink.results:
        raise DecodeError(f"{path}: no decodable video frames", source=str(path))
    return sink.results[0]
