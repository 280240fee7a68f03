"""File mode: decode real encoded clips (FFmpeg via PyAV) and find their scenes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.engines.base import Embedder, ImageLike
from framesift.errors import DecodeError, SourceError
from framesift.samples import write_clip
from framesift.samples_scenes import dissolve_clip, fade_clip, hard_negatives_clip, mixed_clip, pan_clip
from framesift.scenes import detect_scenes
from framesift.scenes.evaluate import match


@pytest.mark.parametrize("codec", ["h264", "mjpeg"])
def test_hard_cuts_exact(tmp_path: Path, codec: str) -> None:
    info = write_clip(tmp_path / "c.mkv", segments=(30, 25, 12, 40), codec=codec, width=192, height=144)
    sl = detect_scenes(info.path)
    assert [e.frame_index for e in sl.events] == list(info.cuts)
    assert sl.frames == info.frames
    assert [(s.start, s.end) for s in sl.scenes] == [(0, 30), (30, 55), (55, 67), (67, 107)]
    assert sl.scenes[1].boundary is not None and sl.scenes[1].boundary.kind == "cut"
    assert len(sl.signal) == info.frames - 1


@pytest.mark.parametrize("make", [dissolve_clip, fade_clip, mixed_clip], ids=["dissolve", "fade", "mixed"])
def test_transitions_after_encoding(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    info = make(tmp_path / "t.mp4")
    sl = detect_scenes(info.path)
    assert len(sl.events) == len(info.transitions)
    for e, t in zip(sl.events, info.transitions, strict=True):
        assert e.kind == t.kind
        if t.kind == "cut":
            assert e.frame_index == t.start
        else:
            assert e.transition_start <= t.start and e.transition_end >= t.end, (e, t)  # type: ignore[operator]
    score = match(info.transitions, [(e.transition_start or 0, e.transition_end or 0) for e in sl.events])
    assert score.f1 == 1.0


@pytest.mark.parametrize("make", [hard_negatives_clip, pan_clip], ids=["people-flash-light", "pan"])
def test_no_false_cuts_after_encoding(tmp_path: Path, make) -> None:  # type: ignore[no-untyped-def]
    info = make(tmp_path / "n.mp4")
    sl = detect_scenes(info.path)
    assert sl.events == [] and len(sl.scenes) == 1 and sl.scenes[0].end == info.frames


def test_thumbnails_one_per_scene(tmp_path: Path) -> None:
    info = write_clip(tmp_path / "c.mp4", segments=(30, 30), width=160, height=120)
    sl = detect_scenes(info.path, thumbnails=True)
    assert sorted(sl.thumbs) == [0, 30]
    assert all(b[:2] == b"\xff\xd8" for b in sl.thumbs.values())  # JPEG


def test_missing_and_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        detect_scenes(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(SourceError, match=r"bad\.mp4"):
        detect_scenes(bad)
    with pytest.raises(SourceError, match="not a regular file"):
        detect_scenes(tmp_path)
    assert issubclass(DecodeError, SourceError)


def test_truncated_file_keeps_what_decoded(tmp_path: Path) -> None:
    info = write_clip(tmp_path / "c.mp4", segments=(30, 30), width=160, height=120, container="mpegts")
    data = info.path.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    sl = detect_scenes(cut)
    assert 30 < sl.frames < 60
    assert [e.frame_index for e in sl.events] == [30]


class _Table(Embedder):
    """Vectors the test controls: one-hot of ``which(frame.index)``; texts map to indices."""

    name = "table"
    dim = 4

    def __init__(self, which, texts: dict[str, int] | None = None) -> None:  # type: ignore[no-untyped-def]
        self.which, self.texts = which, texts or {}
        self.supports_text = bool(texts)
        self.frames_seen = 0

    def _v(self, k: int) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        v[k] = 1
        return v

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        self.frames_seen += len(images)
        return np.stack([self._v(self.which(f.index)) for f in images])  # type: ignore[union-attr]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._v(self.texts[t]) for t in texts])


def test_file_hybrid_refines_with_the_second_embedder(tmp_path: Path) -> None:
    info = write_clip(tmp_path / "c.mp4", segments=(30, 30, 30), width=320, height=240)
    refiner = _Table(lambda i: 0 if i < 31 else (1 if i < 60 else 2))  # says: 31 (one late), 60
    sl = detect_scenes(info.path, config=SceneChangeConfig(mode="hybrid"), embedder=refiner)
    assert [e.frame_index for e in sl.events] == [31, 60]
    assert refiner.frames_seen < 20  # candidates only, not the 90 frames


def test_file_labels_per_scene(tmp_path: Path) -> None:
    info = write_clip(tmp_path / "c.mp4", segments=(30, 30), width=320, height=240)
    texts = {"a football match": 0, "a studio presenter": 1, "an advertisement": 2}
    emb = _Table(lambda i: 2 if i < 30 else 0, texts=texts)
    cfg = SceneChangeConfig(mode="hybrid", labels=list(texts))
    sl = detect_scenes(info.path, config=cfg, embedder=emb)
    assert [s.label for s in sl.scenes] == ["an advertisement", "a football match"]
