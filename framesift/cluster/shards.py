"""Shards of an archive: one per file, and long files cut into keyframe-aligned frame ranges.

A shard *owns* the frames ``[own_start, own_end)``: only events at those frames come from it. It
decodes from ``start`` (a keyframe at least :func:`lookback_frames` before ``own_start``, so the
detector's rolling state has converged to the whole-file run's by the first owned frame) to
``stop`` (:func:`tail_frames` after ``own_end``, so every decision about an owned frame is taken
before the shard ends). Ranges are frame indices as a seek numbers them (presentation time × rate),
so a file is cut only when its frames sit on its rate's grid (constant frame rate).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.analyzers.scene_signal import GAP
from framesift.analyzers.scene_transnet import PAD, WINDOW
from framesift.errors import SourceError

log = logging.getLogger(__name__)

SHOT_MODES = ("transnet", "ensemble")


@dataclass(frozen=True)
class Shard:
    """A pipeline run over ``path``'s frames ``[start, stop)`` owning ``[own_start, own_end)``;
    ``stop`` None: to the end of the file; ``start`` 0: from the first frame (no seek)."""

    path: str
    index: int  # position in the file's shards
    count: int  # shards of the file
    start: int
    own_start: int
    own_end: int | None
    stop: int | None
    rate: str = ""  # "num/den" where the file was cut (frame index ↔ time)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def window_s(self) -> tuple[float | None, float | None]:
        """The file source's ``start``/``end`` (seconds) decoding frames ``[start, stop)``: half a
        frame before the first and after the last, so rounding keeps exactly those frames."""
        if not self.rate:
            return None, None
        rate = Fraction(self.rate)
        start = float((self.start - Fraction(1, 2)) / rate) if self.start > 0 else None
        end = float((self.stop - Fraction(1, 2)) / rate) if self.stop is not None else None
        return start, end

    def owns(self, frame: int) -> bool:
        return frame >= self.own_start and (self.own_end is None or frame < self.own_end)

    def key(self, salt: str = "") -> str:
        """A stable id: the file (path, size, mtime), the range and ``salt`` (the run's settings)."""
        try:
            st = os.stat(self.path)
            ident: Any = [st.st_size, st.st_mtime_ns]
        except OSError:
            ident = None
        blob = json.dumps([asdict(self), ident, salt], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def lookback_frames(cfg: SceneChangeConfig) -> int:
    """Frames a shard decodes before the first frame it owns: the detector's longest look-back,
    its transition window (``max_transition`` + the gradual signal's ``3 × gradual_k`` + the
    flash look-ahead) plus ``min_scene_len`` (a boundary just before the shard still silences the
    next ``min_scene_len`` frames) plus the rolling-statistics ``window``; with TransNetV2, at least
    its 100-frame window and a transition."""
    pixel = (
        cfg.max_transition
        + 3 * cfg.gradual_k
        + GAP
        + cfg.flash_frames
        + 1
        + cfg.min_scene_len
        + cfg.window
        + 8
    )
    if cfg.mode not in SHOT_MODES:
        return pixel
    # TransNetV2: a frame's window starts up to 75 frames before it, and the shard's first window is
    # padded with copies of its first frame; a transition's span opens up to max_transition earlier
    return max(pixel, WINDOW + cfg.max_transition + cfg.min_scene_len)


def tail_frames(cfg: SceneChangeConfig) -> int:
    """Frames a shard decodes after its last owned frame: the detector's longest decision delay."""
    pixel = max(cfg.flash_frames + 1, cfg.max_transition + cfg.gradual_k + GAP + 1) + 2
    if cfg.mode not in SHOT_MODES:
        return pixel
    # TransNetV2 decides a frame when the window 75 frames later has run; its span may run on
    return max(pixel, WINDOW - PAD + cfg.max_transition + 2)


Layout = tuple[Fraction, int, list[int], bool] | None


def layouts(paths: Sequence[str]) -> tuple[dict[str, Layout], list[SourceError]]:
    """Each readable file's :func:`~framesift.stream.headers.frame_layout`, and one error (logged)
    per file that cannot be read: one broken file must not keep the others off the cluster."""
    from framesift.stream.headers import frame_layout

    out: dict[str, Layout] = {}
    errors: list[SourceError] = []
    for p in paths:
        try:
            out[p] = frame_layout(p)
        except SourceError as exc:
            log.error("%s", exc)
            errors.append(exc)
    return out, errors


def unread(errors: Sequence[SourceError], total: int) -> None:
    """Raise the first of ``errors`` (exit 3), counting the files left out of ``total``."""
    if errors:
        first = errors[0]
        raise type(first)(
            f"{first} ({len(errors)} of {total} files could not be read; the others were processed)",
            source=first.source,
        )


def plan_file(
    path: str,
    layout: Layout,
    *,
    shard_frames: int,
    lookback: int,
    tail: int,
) -> list[Shard]:
    """``path``'s shards: about ``shard_frames`` owned frames each, cut at keyframes; one shard
    when the file is short, has no rate, or its frames are off the rate's grid."""
    if layout is None or not layout[3] or layout[1] < 2 * shard_frames:
        return [Shard(path, 0, 1, 0, 0, None, None)]
    rate, frames, keys, _ = layout
    cuts = [0]
    for k in keys:
        if k - cuts[-1] >= shard_frames and frames - k >= shard_frames // 2:
            cuts.append(k)
    if len(cuts) == 1:
        return [Shard(path, 0, 1, 0, 0, None, None)]
    r = f"{rate.numerator}/{rate.denominator}"
    out = []
    for i, own in enumerate(cuts):
        own_end = cuts[i + 1] if i + 1 < len(cuts) else None
        warm = max((k for k in keys if k <= own - lookback), default=0) if own else 0
        stop = None if own_end is None or own_end + tail >= frames else own_end + tail
        out.append(Shard(path, i, len(cuts), warm, own, own_end, stop, r))
    return out
