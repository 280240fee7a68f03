"""On-disk cache of built engines (ONNX exports, TensorRT plans).

Each entry is a directory ``<root>/<digest>/`` holding the artefact files and ``manifest.json``: the
full key, and the size and SHA-256 of every file. An entry is used only when its manifest's key equals
the requested key and every checksum matches; anything else (stale, foreign, truncated, corrupt) is
rebuilt, never loaded (a file's checksum is recomputed whenever its size, times or inode change:
:func:`file_sha256`). Builders take a file lock per key, build into a temporary directory beside the
entry, and publish it with an atomic rename, so concurrent builders (threads or processes) leave one
valid entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from framesift.errors import EngineError

log = logging.getLogger("framesift.engines.cache")

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$FRAMESIFT_CACHE`` if set, else ``~/.cache/framesift/engines``."""
    env = os.environ.get("FRAMESIFT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "framesift" / "engines"


@dataclass(frozen=True)
class EngineKey:
    """Everything an artefact depends on. Any field change gives another digest, hence a rebuild."""

    model: str  # human label, e.g. "ViT-B-32/openai/image"
    weights_hash: str
    runtime: str  # producer: "onnx-export", "tensorrt", ...
    runtime_version: str
    device: str  # device_descriptor(): name + compute capability
    precision: str
    shape_profile: Mapping[str, Any] = field(default_factory=dict)
    export: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT_VERSION
        return json.loads(json.dumps(d, sort_keys=True, default=str))

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:32]


def device_descriptor(device: str) -> str:
    """``cuda:<name>:sm<major><minor>`` for a GPU, ``cpu:<arch>:<model name>`` otherwise."""
    if device.startswith("cuda"):
        import torch

        idx = int(device.split(":", 1)[1]) if ":" in device else 0
        major, minor = torch.cuda.get_device_capability(idx)
        return f"cuda:{torch.cuda.get_device_name(idx)}:sm{major}{minor}"
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"cpu:{platform.machine()}:{model}"


HASHES_DIR = ".hashes"  # in the cache root: one small record per file hashed (path, stat, SHA-256)
MAX_HASH_RECORDS = 1000


def _stamp(st: os.stat_result) -> list[int]:
    # ctime changes on every write and cannot be set back, unlike mtime
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 22, *, remember: bool = True) -> str:
    """SHA-256 of a file, remembered across runs (``remember``) while the file's size, times and
    inode stay the same (weights and engines of 30-100 MB took 0.1 s to hash on every model load)."""
    p = Path(path).resolve()
    before = _stamp(p.stat())
    record = default_cache_dir() / HASHES_DIR / f"{hashlib.sha256(str(p).encode()).hexdigest()[:32]}.json"
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        known = json.loads(record.read_text())
        digest = known.get("sha256")
        if known.get("path") == str(p) and known.get("stamp") == before and _is_hex64(digest):
            return str(digest)
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    if remember and _stamp(p.stat()) == before:  # unchanged while it was read
        with contextlib.suppress(OSError):
            record.parent.mkdir(parents=True, exist_ok=True)
            _prune(record.parent)
            tmp = record.with_name(f".{record.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps({"path": str(p), "stamp": before, "sha256": digest}))
            os.replace(tmp, record)
    return digest


def _prune(folder: Path) -> None:
    """Keeps the records folder bounded: past :data:`MAX_HASH_RECORDS`, the older half goes."""
    records = list(folder.glob("*.json"))
    if len(records) < MAX_HASH_RECORDS:
        return
    records.sort(key=lambda r: r.stat().st_mtime_ns)
    for r in records[: len(records) // 2]:
        with contextlib.suppress(OSError):
            r.unlink()


def _is_hex64(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class EngineCache:
    """A directory of engine entries keyed by :class:`EngineKey`."""

    def __init__(self, root: str | os.PathLike[str] | None = None, *, lock_timeout_s: float = 3600.0) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.lock_timeout_s = lock_timeout_s

    def entry_dir(self, key: EngineKey) -> Path:
        return self.root / key.digest

    def lookup(self, key: EngineKey, filename: str) -> Path | None:
        """The artefact path when a valid entry exists, else None (logs why an entry was rejected)."""
        entry = self.entry_dir(key)
        reason = self._validate(entry, key, filename)
        if reason is None:
            return entry / filename
        if reason != "missing":
            log.warning("engine cache: rejecting %s (%s); it will be rebuilt", entry, reason)
        return None

    def get_or_build(self, key: EngineKey, filename: str, build: Callable[[Path], None]) -> Path:
        """Return the cached artefact, or call ``build(tmp_path)`` to write ``tmp_path`` (and any
        sibling files it needs) and publish it atomically. Safe across threads and processes."""
        found = self.lookup(key, filename)
        if found is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(key):
            found = self.lookup(key, filename)  # another builder may have finished meanwhile
            if found is not None:
                return found
            entry = self.entry_dir(key)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key.digest}.", dir=self.root))
            try:
                t0 = time.monotonic()
                build(tmp / filename)
                if not (tmp / filename).is_file():
                    raise EngineError(f"engine build wrote no {filename} for {key.model}", engine=key.runtime)
                files = {
                    p.name: {"size": p.stat().st_size, "sha256": file_sha256(p, remember=False)}
                    for p in sorted(tmp.iterdir())
                    if p.is_file()
                }
                manifest = {
                    "key": key.as_dict(),
                    "artefact": filename,
                    "files": files,
                    "created": time.time(),
                }
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
                os.chmod(tmp, 0o755)  # mkdtemp makes it private
                old = None
                if entry.exists():
                    old = entry.with_name(f".{key.digest}.old.{os.getpid()}.{threading.get_ident()}")
                    os.replace(entry, old)
                os.replace(tmp, entry)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
                log.info("engine cache: built %s in %.1fs → %s", key.model, time.monotonic() - t0, entry)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        return entry / filename

    def _validate(self, entry: Path, key: EngineKey, filename: str) -> str | None:
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError) as exc:
            return f"unreadable manifest: {exc}"
        if manifest.get("key") != key.as_dict():
            return "key mismatch (foreign or stale entry)"
        files = manifest.get("files", {})
        if filename not in files:
            return f"manifest lists no {filename}"
        for name, meta in files.items():
            p = entry / name
            try:
                size = p.stat().st_size
            except OSError:
                return f"{name} missing"
            if size != meta.get("size"):
                return f"{name} size {size} != {meta.get('size')} (truncated?)"
            if file_sha256(p) != meta.get("sha256"):
                return f"{name} checksum mismatch (corrupt)"
        return None

    @contextlib.contextmanager
    def _locked(self, key: EngineKey) -> Iterator[None]:
        with _THREAD_LOCKS_GUARD:
            tlock = _THREAD_LOCKS.setdefault(str(self.root / key.digest), threading.Lock())
        if not tlock.acquire(timeout=self.lock_timeout_s):
            raise EngineError(
                f"engine cache: timed out waiting for another build of {key.model}", engine=key.runtime
            )
        try:
            lock_path = self.root / f".{key.digest}.lock"
            with open(lock_path, "a+b") as fh:
                deadline = time.monotonic() + self.lock_timeout_s
                while True:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise EngineError(
                                f"engine cache: timed out waiting for the lock {lock_path} "
                                "(another framesift building the same engine?)",
                                engine=key.runtime,
                            ) from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        finally:
            tlock.release()
