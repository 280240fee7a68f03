"""Detector / Segmenter capabilities, plus the small ONNX Runtime and engine-cache adapters they use.

The runtimes and engine cache of the Engines issue (``framesift/engines/runtimes``, ``cache.py``) were
not there when this module was written; :class:`OnnxSession` and :class:`EngineCache` are the minimal
stand-ins (same key fields, lock + atomic rename, stale/corrupt → rebuild). Swap them for the shared
ones when those land: the models only call ``OnnxSession.run`` and ``EngineCache.get_or_build``.
"""

from __future__ import annotations

import abc
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.base import ImageLike
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines")


class Detector(abc.ABC):
    """Finds objects named by text prompts. ``detect`` returns one ``sv.Detections`` per image with
    ``data["class_name"]`` holding the prompt of each box."""

    name: str = "detector"

    @abc.abstractmethod
    def detect(self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None) -> list[Any]:
        """Detect in a batch; ``prompts`` None keeps the current prompt set."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions."""


class Segmenter(abc.ABC):
    """Turns boxes on one image into masks at the image's resolution."""

    name: str = "segmenter"

    @abc.abstractmethod
    def segment(self, image: ImageLike, boxes: np.ndarray) -> np.ndarray:
        """``boxes`` (N, 4) xyxy in image pixels → (N, H, W) bool masks."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions."""


def default_cache_dir() -> Path:
    """``$FRAMESIFT_CACHE`` or ``~/.cache/framesift``, subfolder ``engines``."""
    root = os.environ.get("FRAMESIFT_CACHE") or os.path.join(Path.home(), ".cache", "framesift")
    return Path(root) / "engines"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_state_dict(state: Mapping[str, Any]) -> str:
    """A stable hash of a torch ``state_dict`` (names, shapes, dtypes, values)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


class EngineCache:
    """Compiled artefacts on disk keyed by everything that makes them valid.

    ``key`` holds model hash, export options, runtime + version, device and shape profile. The
    artefact sits next to a ``.json`` with the key and the artefact's sha256; a mismatch (stale or
    corrupt file) rebuilds. Builders take an exclusive ``flock`` and publish with ``os.replace``.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def digest(key: Mapping[str, Any]) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def path_for(self, name: str, key: Mapping[str, Any], suffix: str = ".onnx") -> Path:
        return self.root / f"{name}-{self.digest(key)}{suffix}"

    def _valid(self, path: Path, key: Mapping[str, Any]) -> bool:
        meta = path.with_suffix(path.suffix + ".json")
        if not path.exists() or not meta.exists():
            return False
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            return False
        if info.get("key") != json.loads(json.dumps(key, sort_keys=True, default=str)):
            return False
        return bool(info.get("sha256") == _sha256_file(path))

    def get_or_build(
        self, name: str, key: Mapping[str, Any], build: Callable[[Path], None], suffix: str = ".onnx"
    ) -> Path:
        """Return the cached artefact for ``key``, building it with ``build(tmp_path)`` when absent,
        stale or corrupt."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path_for(name, key, suffix)
        if self._valid(path, key):
            return path
        with open(self.root / f".{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self._valid(path, key):  # another process built it while we waited
                    return path
                if path.exists():
                    log.warning("engine cache: %s is stale or corrupt; rebuilding", path.name)
                fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}-", suffix=suffix)
                os.close(fd)
                try:
                    build(Path(tmp))
                    digest = _sha256_file(Path(tmp))
                    meta_tmp = Path(tmp + ".json")
                    meta_tmp.write_text(
                        json.dumps({"key": key, "sha256": digest}, sort_keys=True, default=str)
                    )
                    os.replace(tmp, path)
                    os.replace(meta_tmp, path.with_suffix(path.suffix + ".json"))
                finally:
                    for leftover in (tmp, tmp + ".json"):
                        if os.path.exists(leftover):
                            os.unlink(leftover)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return path


def ort_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime providers for ``device`` (``auto`` | ``cpu`` | ``cuda``), best first."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = [p for p in wanted if p in available]
    if device == "cuda" and "CUDAExecutionProvider" not in chosen:
        raise EngineError(
            f"device 'cuda' asked for but onnxruntime offers only {available}: "
            "pip install onnxruntime-gpu, or use device 'cpu'"
        )
    return chosen


class OnnxSession:
    """One ONNX Runtime session: named numpy inputs in, numpy outputs out."""

    def __init__(self, path: str | Path, *, device: str = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=ort_providers(device))
        except Exception as exc:
            raise EngineError(
                f"cannot load ONNX model {self.path}: {exc}; delete it to re-export", engine=self.path.name
            ) from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self.session.run(self.output_names, dict(feeds)))
        except Exception as exc:
            raise EngineError(f"ONNX model {self.path.name} failed: {exc}", engine=self.path.name) from exc
