"""File mode: decode a video with PyAV (threaded, downscaled by FFmpeg's scaler) and find its scenes."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from framesift.analyzers.scene_change import SceneChangeAnalyzer, SceneChangeConfig, label_of
from framesift.engines.base import Embedder
from framesift.errors import ConfigError, DecodeError, SourceError
from framesift.events import SceneChange
from framesift.frame import Frame
from framesift.scenes.model import SceneList, scenes_from_events

DECODE_WIDTH = 256  # the pixel signal needs far less; thumbnails and CLIP crops come from this too


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for decoding; SourceError/DecodeError with the fix when it cannot be."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file (check the path)", source=str(p))
    if not p.is_file():
        raise SourceError(f"{p}: not a regular file (pass a video file)", source=str(p))
    try:
        container = av.open(str(p))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise SourceError(
            f"{p}: cannot open as a video ({exc}); is it a video file FFmpeg reads?", source=str(p)
        ) from None
    if not container.streams.video:
        container.close()
        raise DecodeError(f"{p}: has no video stream (pass a video file)", source=str(p))
    return container


def _shrink(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer-factor shrink (rows sampled, columns averaged: cheap), then bilinear to the exact size."""
    ph, pw = plane.shape
    k = max(1, min(pw // width, ph // height))
    if k > 1:
        rows = plane[::k]
        plane = cv2.resize(rows, (pw // k, rows.shape[0]), interpolation=cv2.INTER_AREA)
    if plane.shape != (height, width):
        plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
    return plane


def small_rgb(vf: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """``vf`` scaled to ``width`` x ``height`` RGB.

    For 4:2:0 frames the planes are read in place (no copy), shrunk by an integer factor (rows
    sampled, columns averaged) and converted to RGB at the small size: several times cheaper than
    swscale's area filter at 1280x720 → 256x144. Other pixel formats go through swscale.
    """
    if vf.format.name not in ("yuv420p", "yuvj420p") or vf.width % 2 or vf.height % 2:
        return vf.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
    fw, fh = vf.width, vf.height
    planes = []
    for i, (pw, ph) in enumerate(((fw, fh), (fw // 2, fh // 2), (fw // 2, fh // 2))):
        pl = vf.planes[i]
        arr = np.frombuffer(memoryview(pl), np.uint8).reshape(-1, pl.line_size)[:ph, :pw]
        planes.append(_shrink(arr, width, height))
    return cv2.cvtColor(np.dstack(planes), cv2.COLOR_YUV2RGB)


def _size(width: int, height: int, target: int) -> tuple[int, int]:
    if width <= target:
        return width, height
    h = max(2, round(height * target / width / 2) * 2)
    return target, h


def detect_scenes(
    path: str | Path,
    *,
    config: SceneChangeConfig | None = None,
    embedder: Embedder | None = None,
    decode_width: int = DECODE_WIDTH,
    threads: int = 0,
    batch: int = 32,
    on_progress: Callable[[int], None] | None = None,
    label_every_s: float = 1.0,
    thumbnails: bool = False,
    fast_decode: bool = True,
) -> SceneList:
    """Scenes of one video file.

    ``config`` is the analyzer configuration (mode, thresholds, labels); ``embedder`` is the CLIP
    embedder used by ``clip``/``hybrid`` modes and for labels. Frames are decoded with FFmpeg's
    frame threading and scaled to ``decode_width`` by swscale (area filter) before anything else;
    the pixel signal is computed in batches of ``batch`` frames. Labels (when ``config.labels``)
    are the argmax over the mean embedding of one frame per ``label_every_s`` of each scene.
    ``thumbnails`` keeps one JPEG per scene (a frame just after its opening transition) from a
    bounded ring of recent frames, so no second decoding pass is needed. ``fast_decode`` skips
    the codec's in-loop deblocking filter (H.264/HEVC: ~25% less decoding time; the 32x18 signal
    does not see the difference; ``--split`` decodes normally).
    """
    cfg = config or SceneChangeConfig()
    labels = list(cfg.labels)
    text_emb = None
    if labels:
        if embedder is None or not embedder.supports_text:
            raise ConfigError("--labels needs a CLIP embedder with a text tower (pass --checkpoint)")
        text_emb = np.asarray(embedder.embed_texts(labels), np.float32)
    analyzer = SceneChangeAnalyzer(cfg.model_copy(update={"labels": []}), embedder)
    analyzer.trace = []
    src = str(path)
    t0 = time.perf_counter()
    container = open_video(path)
    events: list[SceneChange] = []
    label_embs: list[tuple[int, np.ndarray]] = []
    thumbs: dict[int, bytes] = {}
    recent: deque[Frame] = deque(maxlen=analyzer.max_delay_frames + 8)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if fast_decode:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        if threads:
            stream.codec_context.thread_count = threads
        fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
        tb = stream.time_base or Fraction(1, 1000)
        w, h = _size(stream.codec_context.width, stream.codec_context.height, decode_width)
        label_step = max(1, round(float(fps) * label_every_s))
        pending: list[Frame] = []
        index = 0

        def flush() -> None:
            if not pending:
                return
            if cfg.mode == "clip":
                assert embedder is not None
                embs = np.asarray(embedder.embed_images(pending), np.float32)
            else:
                embs = analyzer.primary.embed_images(pending)
            for f, e in zip(pending, embs, strict=True):
                new = analyzer.push(f, e)
                if thumbnails:
                    recent.append(f)
                    # Scene 1: one second in (past a fade-in from black) unless it ended sooner.
                    if f.index == 0 or (f.index == round(float(fps)) and not events and not new):
                        thumbs[0] = _jpeg(f.image)
                    for ev in new:
                        _grab(recent, ev, thumbs)  # type: ignore[arg-type]
                events.extend(new)  # type: ignore[arg-type]
            if text_emb is not None and embedder is not None:
                picks = [f for f in pending if f.index % label_step == 0]
                if picks:
                    le = np.asarray(embedder.embed_images(picks), np.float32)
                    label_embs.extend((f.index, v) for f, v in zip(picks, le, strict=True))
            if on_progress is not None:
                on_progress(len(pending))
            pending.clear()

        try:
            for vf in container.decode(stream):
                img = small_rgb(vf, w, h)
                pts = vf.pts if vf.pts is not None else round(index / fps / tb)
                pending.append(Frame(src, index, int(pts), tb, time.time(), img))
                index += 1
                if len(pending) >= batch:
                    flush()
        except av.FFmpegError as exc:
            if index == 0:
                raise DecodeError(f"{path}: cannot decode video ({exc})", source=src) from None
            # A truncated or damaged tail: keep what decoded.
        flush()
        tail = analyzer.on_end(src)
        if thumbnails:
            for ev in tail:
                _grab(recent, ev, thumbs)  # type: ignore[arg-type]
        events.extend(tail)  # type: ignore[arg-type]
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    if index == 0:
        raise DecodeError(f"{path}: no decodable video frames", source=src)
    scene_events = sorted((e for e in events if isinstance(e, SceneChange)), key=lambda e: e.frame_index)
    scenes = scenes_from_events(scene_events, index, fps)
    if text_emb is not None:
        for s in scenes:
            vecs = [v for i, v in label_embs if s.start <= i < s.end]
            if vecs:
                s.label = label_of(np.stack(vecs), text_emb, labels)
    return SceneList(
        path=Path(path),
        fps=fps,
        frames=index,
        width=width,
        height=height,
        scenes=scenes,
        events=scene_events,
        mode=cfg.mode,
        signal=analyzer.trace or [],
        thumbs=thumbs,
        elapsed_s=time.perf_counter() - t0,
    )


def _jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    return buf.tobytes() if ok else b""


def _grab(recent: deque[Frame], ev: SceneChange, thumbs: dict[int, bytes]) -> None:
    """Thumbnail of the scene ``ev`` opens: two frames after its transition, or the newest frame."""
    want = max(ev.frame_index, ev.transition_end or ev.frame_index) + 2
    best = None
    for f in recent:
        if f.index <= want:
            best = f
    if best is None and recent:
        best = recent[0]
    if best is not None:
        thumbs[ev.frame_index] = _jpeg(best.image)
