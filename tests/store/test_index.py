"""The frame store: layout, index, retention, crash safety (kill -9) and disk full."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from framesift.errors import SinkError
from framesift.store.index import INDEX_NAME, FrameStore
from tests.store.helpers import assert_consistent, tiny_disk  # noqa: F401 - fixture


def noise(h: int = 120, w: int = 160, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def add(store: FrameStore, i: int, *, wallclock: float = 1_767_225_600.0, img: np.ndarray | None = None,
        source: str = "cam") -> str:  # fmt: skip
    fid = f"{source}-{i:06d}"
    store.add(
        id=fid, source=source, image=noise(seed=i) if img is None else img, wallclock=wallclock + i,
        pts=i * 1000, time_base=Fraction(1, 25000), time=i * 0.04, frame_index=i, reason="novel",
        scores={"novelty": 0.5}, embedding=np.full(8, 1 / np.sqrt(8), np.float32), model="tiny",
    )  # fmt: skip
    return fid


@pytest.mark.parametrize("fmt,ext", [("jpeg", ".jpg"), ("png", ".png"), ("webp", ".webp")])
def test_layout_index_and_formats(tmp_path: Path, fmt: str, ext: str) -> None:
    with FrameStore(tmp_path, format=fmt, quality=80) as store:
        fid = add(store, 1)
        rec = store.get(fid)
        assert rec is not None
        assert rec.path == f"cam/2026-01-01/{fid}{ext}"
        img = cv2.imread(str(tmp_path / rec.path))
        assert img is not None and img.shape == (120, 160, 3)
        assert rec.scores == {"novelty": 0.5} and rec.model == "tiny" and rec.time_base == Fraction(1, 25000)
        ids, mat = store.recent_embeddings(10)
        assert ids == ["cam"] and mat.shape == (1, 8) and abs(float(np.linalg.norm(mat[0])) - 1) < 1e-3
        mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    assert_consistent(tmp_path)


def test_jpeg_quality_is_configurable(tmp_path: Path) -> None:
    sizes = {}
    for q in (30, 95):
        with FrameStore(tmp_path / str(q), quality=q) as store:
            add(store, 1)
            sizes[q] = store.total_bytes
    assert sizes[30] < sizes[95]


def test_an_encoded_picture_is_written_as_it_is_where_format_and_quality_allow(tmp_path: Path) -> None:
    """The collector's JPEG (quality 90) is compressed once: written byte for byte by a JPEG store of
    quality 90 or more; a lower quality or another format decodes and compresses it as asked."""
    from framesift.frame import EncodedImage

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(noise(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    enc = EncodedImage(buf.tobytes(), "jpeg", 90, 160, 120)
    for name, fmt, q, same in (("q95", "jpeg", 95, True), ("q90", "jpeg", 90, True), ("q40", "jpeg", 40, False),
                               ("webp", "webp", 95, False), ("png", "png", 3, False)):  # fmt: skip
        with FrameStore(tmp_path / name, format=fmt, quality=q) as store:
            rec = store.get(add(store, 1, img=enc))  # type: ignore[arg-type]
            assert rec is not None and (rec.width, rec.height) == (160, 120)
            data = (tmp_path / name / rec.path).read_bytes()
            assert (data == enc.data) is same, name
            assert rec.sha256 == hashlib.sha256(data).hexdigest()
            img = cv2.imread(str(tmp_path / name / rec.path))
            assert img is not None and img.shape == (120, 160, 3)
    with pytest.raises(ValueError, match="does not decode"):
        EncodedImage(b"not a jpeg", "jpeg", 90, 160, 120).decode()


def test_retention_by_size_removes_oldest_first(tmp_path: Path) -> None:
    with FrameStore(tmp_path, format="png", png_compression=0) as store:
        one = add(store, 0)
        size = store.total_bytes
        store.max_bytes = int(size * 3.5)
        for i in range(1, 10):
            add(store, i)
        assert store.count() == 3
        assert store.total_bytes <= store.max_bytes
        assert [r.frame_index for r in store.records()] == [7, 8, 9]
        assert store.get(one) is None and store.removed == 7
    assert_consistent(tmp_path)


def test_retention_by_age(tmp_path: Path) -> None:
    now = 1_767_225_600.0
    with FrameStore(tmp_path) as store:
        for i in range(5):
            add(store, i, wallclock=now - 7200 + i * 1000)  # 7200, 6199, 5198, 4197, 3196 s old
        store.max_age_s = 3600
        assert store.enforce_retention(now=now) == 4
        assert [r.frame_index for r in store.records()] == [4]
    assert_consistent(tmp_path)


def test_readonly_open_of_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    from framesift.errors import ConfigError

    with pytest.raises(ConfigError, match="not a frame store"):
        FrameStore(tmp_path / "nope", readonly=True).open()


WRITER = """
import sys, time
import numpy as np
from framesift.store.index import FrameStore
store = FrameStore(sys.argv[1], format="png", png_compression=0).open()
rng = np.random.default_rng(int(sys.argv[2]))
i = 0
while True:
    store.add(id=f"w{sys.argv[2]}-{i:06d}", source="cam", image=rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8),
              wallclock=time.time(), frame_index=i, reason="novel", embedding=np.ones(4, np.float32) / 2,
              model="tiny")
    i += 1
"""


def test_kill_9_mid_write_leaves_no_half_file(tmp_path: Path) -> None:
    """A writer process is SIGKILLed while an image is half written (its temp file exists)."""
    root = tmp_path / "store"
    caught_mid_write = 0
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(round_)])
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                day = next(iter(root.glob("cam/*")), None) if root.exists() else None
                if day is not None and any(p.suffix == ".tmp" for p in day.iterdir()) and \
                        len(list(day.glob("*.png"))) >= round_ + 2:  # fmt: skip
                    os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(0.001)
        finally:
            proc.kill()
            proc.wait(10)
        # before any repair: every file under its final name is complete (renamed only when whole)
        db = sqlite3.connect(f"file:{root / INDEX_NAME}?mode=ro", uri=True)
        rows = dict(db.execute("SELECT path, sha256 FROM frames"))
        pending = db.execute("SELECT COUNT(*) FROM frames WHERE status=0").fetchone()[0]
        db.close()
        caught_mid_write += bool(list(root.rglob("*.tmp"))) and pending > 0
        for p in root.rglob("*.png"):
            assert hashlib.sha256(p.read_bytes()).hexdigest() == rows[str(p.relative_to(root))]
        assert_consistent(root)  # the writable open repairs: no .tmp, index ↔ files agree
    assert caught_mid_write >= 1, "the writer was never killed mid-write"
    with FrameStore(root, readonly=True) as store:
        assert store.count() >= 2


def test_disk_full_is_a_sink_error_and_the_store_recovers(tiny_disk: Path) -> None:  # noqa: F811
    root = tiny_disk / "store"
    ballast = tiny_disk / "ballast"  # other data on the disk, which an operator removes later
    ballast.write_bytes(b"\0" * 400_000)
    errors = 0
    written = 0
    with FrameStore(root, format="png", png_compression=0) as store:
        for i in range(40):  # 57 KB each: the 1 MiB disk fills after ~15
            try:
                add(store, i)
                written += 1
            except SinkError as exc:
                assert "disk full" in str(exc) and "max_size" in str(exc)
                errors += 1
        assert written >= 3 and errors >= 10
        assert store.count() == written
        # space freed (retention or an operator): writing works again
        ballast.unlink()
        add(store, 1000)
        assert store.count() == written + 1
    assert_consistent(root)
