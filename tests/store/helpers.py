"""Helpers shared by the collection tests: embedders whose vectors we control, clip writers, decoding."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
import pytest
from av.video.stream import VideoStream

from framesift.engines.base import Embedder, ImageLike, as_images
from framesift.frame import Frame
from framesift.samples import render_frame
from framesift.store.index import INDEX_NAME, FrameStore


class TinyEmbedder(Embedder):
    """Weight-free test embedder: a mean-centred 16x12 RGB thumbnail (ignores the barcode strip)."""

    name = "tiny"
    dim = 16 * 12 * 3

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        out = []
        for img in as_images(images):
            img = np.asarray(img)[img.shape[0] // 10 :]  # skip the barcode strip
            v = cv2.resize(img, (16, 12), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
            v -= v.mean()
            out.append(v / max(float(np.linalg.norm(v)), 1e-6))
        return np.stack(out).astype(np.float32)


class FakeEmbedder(Embedder):
    """Vectors we control: an image's class is its top-left red value; texts map through ``texts``."""

    name = "fake"
    supports_text = True

    def __init__(self, dim: int = 8, texts: dict[str, int] | None = None, noise: float = 0.02) -> None:
        self.dim = dim
        self.texts = texts or {}
        self.noise = noise
        self.rng = np.random.default_rng(0)

    def basis(self, k: int) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        v[k % self.dim] = 1.0
        return v

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        out = []
        for img in as_images(images):
            v = self.basis(int(np.asarray(img)[0, 0, 0])) + self.rng.normal(0, self.noise, self.dim)
            out.append(v / np.linalg.norm(v))
        return np.stack(out).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.basis(self.texts.get(t, self.dim - 1)) for t in texts])


def class_image(k: int, size: tuple[int, int] = (24, 32)) -> np.ndarray:
    img = np.full((*size, 3), 60, np.uint8)
    img[0, 0, 0] = k
    return img


def make_frame(source: str, index: int, seconds: float, image: np.ndarray, fps: int = 25) -> Frame:
    tb = Fraction(1, fps * 1000)
    return Frame(source, index, round(seconds * fps * 1000), tb, 1_700_000_000.0 + seconds, image)


def write_station_clip(
    path: Path, plan: Sequence[tuple[int, int, bool]], *, fps: int = 25, width: int = 160, height: int = 120
) -> list[int]:
    """Encode ``plan`` = [(scene_seed, frames, static)]; returns the plan index of every frame.

    A moving stretch is :func:`render_frame` (a disc moving over the scene, barcode on top); a static
    stretch repeats one identical image (the scene with the disc parked, no barcode change).
    """
    labels: list[int] = []
    out = av.open(str(path), mode="w")
    try:
        stream = cast(VideoStream, out.add_stream("libx264", rate=fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        index = 0
        for k, (seed, n, static) in enumerate(plan):
            still = render_frame(0, seed, 0, width, height, seed=7)
            for local in range(n):
                img = still if static else render_frame(index, seed, local, width, height, seed=7)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    out.mux(packet)
                labels.append(k)
                index += 1
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()
    return labels


def decode(path: Path, source_id: str = "cam") -> Iterator[Frame]:
    """Decode a file with PyAV into Frames (exact pts)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for i, f in enumerate(c.decode(s)):
            assert f.pts is not None
            yield Frame(
                source_id, i, int(f.pts), Fraction(s.time_base), time.time(), f.to_ndarray(format="rgb24")
            )


def image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(INDEX_NAME))


def assert_consistent(root: Path) -> None:
    """Every indexed frame has its complete file (sha256) and every file is indexed; no temp files."""
    with FrameStore(root) as store:  # writable open = recovery
        recs = {r.path: r for r in store.records()}
        files = image_files(root)
        assert not [p for p in files if p.name.endswith(".tmp")]
        assert {str(p.relative_to(root)) for p in files} == set(recs)
        for p in files:
            rec = recs[str(p.relative_to(root))]
            assert hashlib.sha256(p.read_bytes()).hexdigest() == rec.sha256
            assert p.stat().st_size == rec.bytes
        ok = sqlite3.connect(root / INDEX_NAME).execute("PRAGMA integrity_check").fetchone()[0]
        assert ok == "ok"


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return r.returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "1m"):
        pytest.skip("cannot mount a 1 MiB tmpfs here (needs root / CAP_SYS_ADMIN) to fill a disk for real")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10)
