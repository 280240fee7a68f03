"""``scenes --split`` carries the audio over, cut at the scene boundaries to the sample."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from framesift.stream.split import split_scenes

RATE = 48_000
FPS = 25


def _clip_with_tones(path: Path, seconds: int = 2, cut_s: float = 1.0) -> Path:
    """Video: grey levels changing at ``cut_s``; audio: 440 Hz before ``cut_s``, 1500 Hz after."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = 160, 96, "yuv420p"
        a = out.add_stream("aac", rate=RATE, layout="stereo")
        t = np.arange(seconds * RATE) / RATE
        tone = np.where(t < cut_s, np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1500 * t)).astype(
            np.float32
        )
        for i in range(seconds * FPS):
            level = 40 if i < cut_s * FPS else 200
            img = np.full((96, 160, 3), level, np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for k in range(0, len(tone), 1024):
            chunk = np.stack([tone[k : k + 1024]] * 2)
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="stereo")
            f.sample_rate, f.pts, f.time_base = RATE, k, Fraction(1, RATE)
            for p in a.encode(f):
                out.mux(p)
        for s in (v, a):
            for p in s.encode(None):
                out.mux(p)
    return path


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(c.streams.audio[0])])


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * RATE / len(samples))


def test_split_files_carry_the_audio_cut_at_the_boundary(tmp_path: Path) -> None:
    clip = _clip_with_tones(tmp_path / "talk.mp4")
    files = split_scenes(clip, [(0, 25), (25, 50)], tmp_path / "split", "talk")
    assert [p.name for p in files] == ["talk-scene-001.mp4", "talk-scene-002.mp4"]
    lengths = []
    for p, hz in zip(files, (440, 1500), strict=True):
        with av.open(str(p)) as c:
            assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"
            assert sum(1 for _ in c.decode(c.streams.video[0])) == 25
        samples = _audio(p)
        lengths.append(len(samples))
        # AAC's priming and last frame: a few thousand samples either way at most
        assert abs(len(samples) - RATE) < 3000
        # the inner 0.8 s holds one tone only: the cut fell at the boundary
        inner = samples[RATE // 10 : RATE - RATE // 10]
        assert abs(_dominant_hz(inner) - hz) < 30
    assert abs(sum(lengths) - 2 * RATE) < 5000


def test_split_without_audio_stream_or_audio_off(tmp_path: Path) -> None:
    clip = _clip_with_tones(tmp_path / "talk.mp4")
    files = split_scenes(clip, [(0, 25), (25, 50)], tmp_path / "mute", "talk", audio=False)
    for p in files:
        with av.open(str(p)) as c:
            assert not c.streams.audio
