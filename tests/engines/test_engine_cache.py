"""Engine cache: key changes rebuild, corrupt or foreign entries are rebuilt (never loaded), and
concurrent builders (threads and processes) leave one valid entry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from framesift.engines.cache import (
    HASHES_DIR,
    EngineCache,
    EngineKey,
    default_cache_dir,
    device_descriptor,
    file_sha256,
)
from framesift.errors import EngineError


def _key(**over: object) -> EngineKey:
    base: dict[str, object] = dict(
        model="m/random/image",
        weights_hash="w" * 64,
        runtime="onnx-export",
        runtime_version="torch 2.x",
        device="any",
        precision="fp32",
        shape_profile={"batch": "dynamic"},
        export={"opset": 18},
    )
    base.update(over)
    return EngineKey(**base)  # type: ignore[arg-type]


class Builder:
    def __init__(self, payload: bytes = b"engine-bytes", delay: float = 0.0) -> None:
        self.calls = 0
        self.payload = payload
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, out: Path) -> None:
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        out.write_bytes(self.payload)


def test_hit_after_build(tmp_path: Path) -> None:
    cache, b = EngineCache(tmp_path), Builder()
    p1 = cache.get_or_build(_key(), "image.onnx", b)
    p2 = cache.get_or_build(_key(), "image.onnx", b)
    assert p1 == p2 and p1.read_bytes() == b"engine-bytes" and b.calls == 1


@pytest.mark.parametrize(
    "change",
    [
        {"weights_hash": "x" * 64},
        {"runtime_version": "torch 9"},
        {"device": "cuda:NVIDIA H100:sm90"},
        {"precision": "fp16"},
        {"shape_profile": {"min": 1, "opt": 64, "max": 512}},
        {"export": {"opset": 17}},
        {"runtime": "tensorrt"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_any_key_change_rebuilds(tmp_path: Path, change: dict[str, object]) -> None:
    cache, b = EngineCache(tmp_path), Builder()
    p1 = cache.get_or_build(_key(), "image.onnx", b)
    p2 = cache.get_or_build(_key(**change), "image.onnx", b)
    assert b.calls == 2 and p1 != p2


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_corrupt_entry_is_detected_and_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache, b = EngineCache(tmp_path), Builder(payload=b"A" * 4096)
    path = cache.get_or_build(_key(), "image.onnx", b)
    if damage == "flip":
        data = bytearray(path.read_bytes())
        data[100] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "delete":
        path.unlink()
    else:
        (path.parent / "manifest.json").write_text("{not json")
    assert cache.lookup(_key(), "image.onnx") is None  # never handed out
    again = cache.get_or_build(_key(), "image.onnx", b)
    assert b.calls == 2 and again.read_bytes() == b"A" * 4096
    assert cache.lookup(_key(), "image.onnx") == again
    if damage != "delete":
        assert "rejecting" in caplog.text


def test_foreign_entry_under_the_same_digest_is_rebuilt(tmp_path: Path) -> None:
    cache, b = EngineCache(tmp_path), Builder()
    path = cache.get_or_build(_key(), "image.onnx", b)
    manifest = path.parent / "manifest.json"
    m = json.loads(manifest.read_text())
    m["key"]["device"] = "cuda:some other GPU:sm75"  # e.g. a cache directory copied from another machine
    manifest.write_text(json.dumps(m))
    assert cache.lookup(_key(), "image.onnx") is None
    cache.get_or_build(_key(), "image.onnx", b)
    assert b.calls == 2


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)

    def boom(out: Path) -> None:
        out.write_bytes(b"partial")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        cache.get_or_build(_key(), "image.onnx", boom)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    assert cache.lookup(_key(), "image.onnx") is None


def test_builder_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"wrote no image\.onnx"):
        EngineCache(tmp_path).get_or_build(_key(), "image.onnx", lambda out: None)


def test_concurrent_threads_build_once(tmp_path: Path) -> None:
    cache, b = EngineCache(tmp_path), Builder(delay=0.3)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(EngineCache(tmp_path).get_or_build(_key(), "image.onnx", b))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, name=f"builder-{i}") for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(results) == 6 and len(set(results)) == 1
    assert b.calls == 1
    assert cache.lookup(_key(), "image.onnx") == results[0]


_CHILD = """
import os, sys, time
from pathlib import Path
from framesift.engines.cache import EngineCache, EngineKey
root, markers, barrier = sys.argv[1:4]
key = EngineKey(**__import__("json").loads(sys.argv[4]))
while not Path(barrier).exists():  # start together, so the builds really overlap
    time.sleep(0.01)
def build(out):
    (Path(markers) / f"built-{os.getpid()}").touch()
    time.sleep(0.3)
    out.write_bytes(b"P" * 100_000)
path = EngineCache(root).get_or_build(key, "image.onnx", build)
assert path.read_bytes() == b"P" * 100_000
"""


def test_concurrent_processes_leave_one_valid_entry(tmp_path: Path) -> None:
    root, markers, barrier = tmp_path / "cache", tmp_path / "markers", tmp_path / "go"
    markers.mkdir()
    key = _key()
    key_json = json.dumps({k: v for k, v in key.as_dict().items() if k != "format"})
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(root), str(markers), str(barrier), key_json])
        for _ in range(3)
    ]
    try:
        time.sleep(0.5)
        barrier.touch()
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert codes == [0, 0, 0]
    assert len(list(markers.iterdir())) == 1  # one builder; the others waited and reused it
    entries = [p for p in root.iterdir() if p.is_dir()]
    assert len(entries) == 1  # no temporary or half-written directories left
    assert EngineCache(root).lookup(key, "image.onnx") is not None


def test_default_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAMESIFT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FRAMESIFT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "framesift" / "engines"


def test_device_descriptor_names_the_cpu() -> None:
    d = device_descriptor("cpu")
    assert d.startswith("cpu:") and len(d) > 5


def test_clip_engine_reuses_and_rebuilds_exports(tmp_path: Path) -> None:
    """End to end: same weights reuse the cached ONNX; other weights get another entry."""
    pytest.importorskip("open_clip")
    from framesift.engines.models.clip import ClipEmbedder
    from tests.engines.clip_helpers import TINY, tiny_model

    def export_of(seed: int) -> Path:
        emb = ClipEmbedder(
            TINY, torch_model=tiny_model(seed), runtime="onnxruntime", device="cpu", cache_dir=str(tmp_path)
        )
        emb.close()
        return emb.artefacts["image.onnx"]

    a = export_of(0)
    mtime = a.stat().st_mtime_ns
    assert export_of(0) == a and a.stat().st_mtime_ns == mtime  # reused, not rebuilt
    b = export_of(1)
    assert b != a and b.is_file()
    # Corrupt the cached export: the next engine rebuilds it instead of loading it.
    a.write_bytes(a.read_bytes()[:-10])
    assert export_of(0) == a and EngineCache(tmp_path).lookup(_ck(a), "image.onnx") is not None


def _ck(path: Path) -> EngineKey:
    m = json.loads((path.parent / "manifest.json").read_text())["key"]
    m.pop("format")
    return EngineKey(**m)


def test_file_hash_is_remembered_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAMESIFT_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "weights.pth"
    f.write_bytes(b"A" * 10_000)
    true_a = hashlib.sha256(b"A" * 10_000).hexdigest()
    assert file_sha256(f) == true_a
    (record,) = (tmp_path / "cache" / HASHES_DIR).glob("*.json")
    known = json.loads(record.read_text())
    assert known["sha256"] == true_a and known["path"] == str(f.resolve())
    # the record answers while the file is unchanged (a planted digest proves it was not re-read)
    record.write_text(json.dumps({**known, "sha256": "0" * 64}))
    assert file_sha256(f) == "0" * 64
    # same size, other bytes: the stamp differs, the file is hashed again
    f.write_bytes(b"B" * 10_000)
    assert file_sha256(f) == hashlib.sha256(b"B" * 10_000).hexdigest()
    # a damaged or hostile record is ignored
    for junk in ("{not json", json.dumps([1, 2]), json.dumps({**known, "sha256": "../../x"})):
        record.write_text(junk)
        assert file_sha256(f) == hashlib.sha256(b"B" * 10_000).hexdigest()
    # files the cache is building are hashed without a record (their folder is renamed)
    g = tmp_path / "tmp.onnx"
    g.write_bytes(b"C")
    file_sha256(g, remember=False)
    assert len(list((tmp_path / "cache" / HASHES_DIR).glob("*.json"))) == 1


def test_hash_records_stay_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import framesift.engines.cache as cache_mod

    monkeypatch.setenv("FRAMESIFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_mod, "MAX_HASH_RECORDS", 8)
    for i in range(30):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(bytes([i]) * 100)
        assert file_sha256(f) == hashlib.sha256(bytes([i]) * 100).hexdigest()
    assert len(list((tmp_path / "cache" / HASHES_DIR).glob("*.json"))) <= 8
