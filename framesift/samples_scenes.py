"""Generated clips for scene-change detection with known ground truth.

:func:`framesift.samples.write_clip` gives hard cuts only; this module adds the hard cases: dissolves,
fades through black, one- and two-frame flashes, a global brightness step, a slow pan, and a static
camera with people-like blobs walking. Every clip reports its true transitions as inclusive frame
intervals (a cut is ``start == end ==`` the first frame of the new shot).

Example::

    tl = Timeline(320, 240, fps=25)
    tl.add(StaticShot(1), 40)
    tl.dissolve_to(PanShot(2), 20, 40)
    info = tl.write("clip.mp4")   # info.transitions == (Transition("dissolve", 40, 59),)
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

from framesift.samples import scene_background


@dataclass(frozen=True)
class Transition:
    """A true transition: ``kind`` cut|dissolve|fade over frames ``start..end`` (inclusive)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class SceneClipInfo:
    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    transitions: tuple[Transition, ...] = ()

    @property
    def cuts(self) -> tuple[int, ...]:
        return tuple(t.start for t in self.transitions if t.kind == "cut")


def _texture(seed: int, width: int, height: int) -> np.ndarray:
    """A scene: gradient + rectangles (samples.scene_background) + smooth random texture."""
    base = scene_background(seed, width, height).astype(np.float32)
    rng = np.random.default_rng(seed + 7919)
    coarse = rng.normal(0, 25, (max(2, height // 12), max(2, width // 12), 3)).astype(np.float32)
    base += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return base


class Shot(abc.ABC):
    """A continuous camera shot; ``render(i)`` is its i-th frame as float32 RGB."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.next = 0
        self.size: tuple[int, int] = (0, 0)

    def setup(self, width: int, height: int) -> None:
        self.size = (width, height)

    @abc.abstractmethod
    def render(self, i: int) -> np.ndarray:
        """Frame ``i`` of the shot (float32 RGB, 0..255)."""

    def take(self) -> np.ndarray:
        img = self.render(self.next)
        self.next += 1
        return img


class StaticShot(Shot):
    """A fixed camera on a textured scene with a disc moving across it."""

    def setup(self, width: int, height: int) -> None:
        super().setup(width, height)
        self.bg = _texture(self.seed, width, height)
        rng = np.random.default_rng(self.seed)
        self.colour = rng.integers(0, 256, 3).astype(np.float32)

    def render(self, i: int) -> np.ndarray:
        w, h = self.size
        img = self.bg.copy()
        r = max(4, min(w, h) // 12)
        cx = int(w // 4 + i * 2) % (w - 2 * r) + r
        cy = h // 2 + int(h // 5 * np.sin(i / 10.0))
        cv2.circle(img, (cx, cy), r, self.colour.tolist(), -1)
        return img


class PanShot(Shot):
    """A slow horizontal pan (``speed`` px/frame) across a panorama three frames wide."""

    def __init__(self, seed: int, speed: float = 2.0) -> None:
        super().__init__(seed)
        self.speed = speed

    def setup(self, width: int, height: int) -> None:
        super().setup(width, height)
        self.pano = _texture(self.seed, width * 3, height)

    def render(self, i: int) -> np.ndarray:
        w, _ = self.size
        x = self.speed * i
        period = 2 * w  # ping-pong so a long clip stays inside the panorama
        x = x % (2 * period)
        x = x if x <= period else 2 * period - x
        m = np.array([[1.0, 0.0, -x], [0.0, 1.0, 0.0]], np.float32)
        return np.asarray(cv2.warpAffine(self.pano, m, self.size, flags=cv2.INTER_LINEAR), np.float32)


class PeopleShot(Shot):
    """A static camera; ``n`` people-like blobs (body + head) walk across at 1-2 px/frame."""

    def __init__(self, seed: int, n: int = 4) -> None:
        super().__init__(seed)
        self.n = n

    def setup(self, width: int, height: int) -> None:
        super().setup(width, height)
        self.bg = _texture(self.seed, width, height)
        rng = np.random.default_rng(self.seed + 1)
        self.people = [
            (
                float(rng.uniform(0, width)),
                float(rng.uniform(height * 0.45, height * 0.8)),
                float(rng.choice([-1, 1]) * rng.uniform(1.0, 2.0)),
                rng.integers(0, 256, 3).astype(np.float32).tolist(),
            )
            for _ in range(self.n)
        ]

    def render(self, i: int) -> np.ndarray:
        w, h = self.size
        img = self.bg.copy()
        s = h / 240.0
        for x0, y, vx, colour in self.people:
            x = (x0 + vx * i) % (w + 40) - 20
            bob = 2 * np.sin(i / 3.0 + x0)
            cv2.ellipse(img, (int(x), int(y + bob)), (int(7 * s), int(18 * s)), 0, 0, 360, colour, -1)
            cv2.circle(img, (int(x), int(y + bob - 24 * s)), int(6 * s), (220, 180, 150), -1)
        return img


Op = Callable[[], np.ndarray]


def _mix(a: Shot, b: Shot, alpha: float) -> np.ndarray:
    return (1 - alpha) * a.take() + alpha * b.take()


def _dim(a: Shot, k: float) -> np.ndarray:
    return k * a.take()


@dataclass
class Timeline:
    """Builds a clip shot by shot, recording every true transition."""

    width: int = 320
    height: int = 240
    fps: int | Fraction = 25
    noise: float = 2.0
    ops: list[Op] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    current: Shot | None = None
    gain: float = 1.0

    def _shot(self, shot: Shot) -> Shot:
        if shot.size != (self.width, self.height):
            shot.setup(self.width, self.height)
        return shot

    def _emit(self, fn: Op) -> None:
        gain = self.gain
        self.ops.append(lambda: fn() * gain)

    def add(self, shot: Shot, n: int) -> Timeline:
        """Continue with ``shot`` for ``n`` frames (a cut if it differs from the current shot)."""
        shot = self._shot(shot)
        if self.current is not None and shot is not self.current:
            self.transitions.append(Transition("cut", len(self.ops), len(self.ops)))
        self.current = shot
        for _ in range(n):
            self._emit(shot.take)
        return self

    def dissolve_to(self, shot: Shot, n_trans: int, n: int) -> Timeline:
        """Cross-dissolve over ``n_trans`` mixed frames, then ``n`` frames of ``shot``."""
        assert self.current is not None
        a, b = self.current, self._shot(shot)
        start = len(self.ops)
        for j in range(1, n_trans + 1):
            alpha = j / (n_trans + 1)
            self._emit(functools.partial(_mix, a, b, alpha))
        self.transitions.append(Transition("dissolve", start, len(self.ops) - 1))
        self.current = b
        for _ in range(n):
            self._emit(b.take)
        return self

    def fade_to(self, shot: Shot, n_out: int, n_black: int, n_in: int, n: int) -> Timeline:
        """Fade to black over ``n_out`` frames, hold ``n_black``, fade in ``shot`` over ``n_in``."""
        assert self.current is not None
        a, b = self.current, self._shot(shot)
        start = len(self.ops)
        for j in range(1, n_out + 1):
            self._emit(functools.partial(_dim, a, 1 - j / n_out))
        for _ in range(n_black):
            self._emit(lambda: np.zeros((self.height, self.width, 3), np.float32))
        for j in range(1, n_in + 1):
            self._emit(functools.partial(_dim, b, j / (n_in + 1)))
        self.transitions.append(Transition("fade", start, len(self.ops) - 1))
        self.current = b
        for _ in range(n):
            self._emit(b.take)
        return self

    def flash(self, n_frames: int, strength: float = 0.7) -> Timeline:
        """A photographer's flash: ``n_frames`` of the current shot washed towards white."""
        assert self.current is not None
        a = self.current
        for _ in range(n_frames):
            self._emit(lambda: a.take() * (1 - strength) + 255.0 * strength)
        return self

    def brightness(self, gain: float) -> Timeline:
        """From the next frame on, multiply everything by ``gain`` (a global lighting step)."""
        self.gain = gain
        return self

    def render(self) -> Iterator[np.ndarray]:
        """The frames as uint8 RGB arrays (with the sensor noise), without encoding."""
        rng = np.random.default_rng(12345)
        for op in self.ops:
            img = op()
            if self.noise:
                img = img + rng.normal(0, self.noise, img.shape).astype(np.float32)
            yield np.clip(img, 0, 255).astype(np.uint8)

    def write(self, path: str | Path, *, codec: str = "libx264", keyint: int | None = None) -> SceneClipInfo:
        """Encode the timeline (H.264, yuv420p) and return the ground truth; ``keyint``: a keyframe
        at least every that many frames (the encoder's default otherwise)."""
        path = Path(path)
        rate = Fraction(self.fps)
        out = av.open(str(path), mode="w")
        try:
            stream = cast(VideoStream, out.add_stream(codec, rate=rate))
            stream.width, stream.height = self.width, self.height
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"preset": "ultrafast", "crf": "20"}
                if keyint:
                    stream.options = {**stream.options, "g": str(keyint)}
            for index, img in enumerate(self.render()):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = index
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        finally:
            out.close()
        return SceneClipInfo(path, len(self.ops), rate, self.width, self.height, tuple(self.transitions))


# Ready-made timelines (render in memory with Timeline.render, or encode with *_clip) ----------------


def dissolve_timeline(width: int = 320, height: int = 240, fps: int = 25) -> Timeline:
    """Static → dissolve (20 frames) → people → dissolve (12) → pan."""
    tl = Timeline(width, height, fps)
    tl.add(StaticShot(11), 40).dissolve_to(PeopleShot(12), 20, 40).dissolve_to(PanShot(13), 12, 40)
    return tl


def fade_timeline(width: int = 320, height: int = 240, fps: int = 25) -> Timeline:
    """Static → fade out/in through black (6 black frames) → static → fade with one black frame → people."""
    tl = Timeline(width, height, fps)
    tl.add(StaticShot(21), 40).fade_to(StaticShot(22), 12, 6, 12, 40).fade_to(PeopleShot(23), 10, 1, 10, 40)
    return tl


def hard_negatives_timeline(width: int = 320, height: int = 240, fps: int = 25) -> Timeline:
    """No transition: people walking, 1- and 2-frame flashes, brightness steps up and down."""
    tl = Timeline(width, height, fps)
    people = PeopleShot(31, n=5)
    tl.add(people, 30).flash(1).add(people, 25).flash(2).add(people, 25)
    tl.brightness(1.35).add(people, 30).brightness(0.8).add(people, 30)
    return tl


def pan_timeline(width: int = 320, height: int = 240, fps: int = 25) -> Timeline:
    """A slow pan (1.5 px/frame) with a one-frame flash in the middle: no transition."""
    tl = Timeline(width, height, fps)
    pan = PanShot(32, speed=1.5)
    tl.add(pan, 60).flash(1).add(pan, 60)
    return tl


def cuts_timeline(width: int = 320, height: int = 240, fps: int = 25) -> Timeline:
    """Hard cuts between static, people and pan shots, including a short (10-frame) shot."""
    tl = Timeline(width, height, fps)
    tl.add(StaticShot(41), 30).add(PeopleShot(42), 30).add(PanShot(43), 10).add(StaticShot(44), 30)
    tl.add(PeopleShot(45, n=2), 30)
    return tl


def mixed_timeline(width: int = 320, height: int = 240, fps: int = 25, seed: int = 0) -> Timeline:
    """Everything in one clip: cuts, dissolves, fades, flashes, lighting steps, pans, walkers."""
    s = 100 + seed * 20
    tl = Timeline(width, height, fps)
    people = PeopleShot(s + 1)
    tl.add(StaticShot(s), 30).add(people, 20).flash(1).add(people, 20)
    tl.dissolve_to(PanShot(s + 2, speed=1.0), 15, 40)
    lit = StaticShot(s + 3)
    tl.add(lit, 25).brightness(1.3).add(lit, 25).brightness(1.0)
    walkers = PeopleShot(s + 4, n=3)
    tl.fade_to(walkers, 10, 3, 10, 30).flash(2).add(walkers, 25)
    tl.add(StaticShot(s + 5), 30).dissolve_to(StaticShot(s + 6), 25, 30).add(PanShot(s + 7, speed=2.0), 40)
    return tl


def dissolve_clip(path: str | Path, **kw: int) -> SceneClipInfo:
    return dissolve_timeline(**kw).write(path)


def fade_clip(path: str | Path, **kw: int) -> SceneClipInfo:
    return fade_timeline(**kw).write(path)


def hard_negatives_clip(path: str | Path, **kw: int) -> SceneClipInfo:
    return hard_negatives_timeline(**kw).write(path)


def pan_clip(path: str | Path, **kw: int) -> SceneClipInfo:
    return pan_timeline(**kw).write(path)


def cuts_clip(path: str | Path, **kw: int) -> SceneClipInfo:
    return cuts_timeline(**kw).write(path)


def mixed_clip(path: str | Path, **kw: int) -> SceneClipInfo:
    return mixed_timeline(**kw).write(path)
