"""Shards run by Ray actors: each actor holds its engines across the shards it runs; a shard whose
worker dies (its process or its node) goes back to the queue and runs on a surviving actor; every
finished shard is saved under a manifest folder, so an interrupted run resumes where it stopped.

Ray schedules: placement, resources (``num_cpus``, fractional ``num_gpus``), node failure detection.
This module only keeps the queue of shards and the manifest; it starts no processes of its own.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import pickle
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framesift.cluster.shards import Shard
from framesift.errors import ConfigError, FramesiftError

log = logging.getLogger("framesift.cluster")

MAX_TRIES = 4  # runs of one shard whose worker died, before the run fails


class ClusterError(FramesiftError, RuntimeError):
    """The cluster could not finish the run (every worker gone, a shard failing again and again)."""


@dataclass
class RunStats:
    """What a run did: shards run here, loaded from the manifest, and re-run after a worker died."""

    ran: int = 0
    resumed: int = 0
    retried: int = 0
    workers: int = 0
    nodes: dict[str, int] = field(default_factory=dict)  # node id → shards it finished


def connect(address: str) -> Any:
    """Join (or, for ``local``, start) the Ray cluster ``address`` names: ``local``, ``auto`` or
    ``HOST:PORT``. Returns the ``ray`` module."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'framesift[ray]'") from None
    if ray.is_initialized():
        return ray
    opts: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address not in ("local", "auto"):
        _check_reachable(address)
    try:
        if address == "local":
            ray.init(include_dashboard=False, **opts)
        else:
            ray.init(address=address, **opts)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(
            f"--ray {address}: no Ray cluster there ({str(exc).splitlines()[0]}); start one with "
            "`ray start --head`, pass its HOST:PORT, or use --ray local"
        ) from None
    return ray


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """One line, at once, for a ``HOST:PORT`` nobody answers at (Ray itself retries for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"--ray {address}: not an address; use local, auto or HOST:PORT (e.g. 10.0.0.5:6379)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ConfigError(
            f"--ray {address}: no Ray head answers there ({exc.strerror or exc}); start one with "
            "`ray start --head --port PORT`, or use --ray local"
        ) from None


def died_errors() -> tuple[type[BaseException], ...]:
    """Ray's errors for an actor (its process or its node) that is gone."""
    from ray.exceptions import RayActorError, WorkerCrashedError

    return (RayActorError, WorkerCrashedError)


class ShardWorker:
    """A Ray actor: runs shards with the engines it built on its first shard, reused after."""

    def __init__(self) -> None:
        self._engines: dict[str, Any] = {}

    def node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def run(self, task: str, shard: Shard, cfg: Any, engine: dict[str, Any]) -> tuple[Any, str]:
        module, _, name = task.partition(":")
        fn = getattr(importlib.import_module(module), name)
        embedder = None
        if cfg.uses_embedder():
            key = json.dumps(engine, sort_keys=True)
            if key not in self._engines:
                from framesift.config.engines import EngineConfig
                from framesift.engines.factory import build_embedder

                self._engines[key] = build_embedder(EngineConfig.model_validate(engine))
            embedder = self._engines[key]
        return fn(shard, cfg, engine, embedder), self.node()


class Manifest:
    """``DIR/manifest.json`` (the shards of the run) and one ``KEY.pkl`` per finished shard."""

    def __init__(self, folder: Path, shards: Sequence[Shard], salt: str) -> None:
        self.dir = folder
        self.salt = salt
        self.keys = {s: s.key(salt) for s in shards}
        folder.mkdir(parents=True, exist_ok=True)
        listing = [{"key": self.keys[s], "path": s.path, "own": [s.own_start, s.own_end]} for s in shards]
        self._atomic(folder / "manifest.json", json.dumps({"shards": listing}, indent=1).encode())

    def _atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def load(self, shard: Shard) -> Any | None:
        path = self.dir / f"{self.keys[shard]}.pkl"
        if not path.is_file():
            return None
        try:
            return pickle.loads(path.read_bytes())
        except Exception:  # a torn or stale file: run the shard again
            return None

    def save(self, shard: Shard, result: Any) -> None:
        self._atomic(self.dir / f"{self.keys[shard]}.pkl", pickle.dumps(result))

    def _mark_path(self, path: str) -> Path:
        return self.dir / f"merged-{Shard(path, 0, 1, 0, 0, None, None).key(self.salt)}.json"

    def mark_merged(self, path: str, ids: Sequence[str]) -> None:
        """``path``'s results are in the store (``ids``): a later run of the same settings skips it."""
        self._atomic(self._mark_path(path), json.dumps({"path": path, "ids": list(ids)}).encode())
        for shard, key in self.keys.items():
            if shard.path == path:
                with contextlib.suppress(OSError):
                    (self.dir / f"{key}.pkl").unlink()

    def merged(self, path: str) -> bool:
        return self._mark_path(path).is_file()

    def clear(self) -> None:
        for key in self.keys.values():
            with contextlib.suppress(OSError):
                (self.dir / f"{key}.pkl").unlink()
        with contextlib.suppress(OSError):
            (self.dir / "manifest.json").unlink()
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def run_shards(
    ray: Any,
    shards: Sequence[Shard],
    task: str,
    cfg: Any,
    engine: dict[str, Any],
    *,
    manifest: Manifest,
    on_result: Callable[[Shard, Any], None],
    cpus: float = 1.0,
    gpus: float = 0.0,
    workers: int | None = None,
    progress: str | None = None,
    unit: str = "shard",
    quiet: bool = True,
) -> RunStats:
    """Run ``task`` (``module:function(shard, cfg, engine, embedder)``) over ``shards`` on actors;
    ``on_result(shard, result)`` is called here, once per shard, in completion order. With
    ``progress`` (its label), a bar on stderr counts the shards in ``unit`` (hidden with ``quiet``)."""
    if progress is None:
        return _run_shards(ray, shards, task, cfg, engine, manifest, on_result, cpus, gpus, workers)
    from framesift.progress import Bar

    bar = Bar(total=len(shards), unit=unit, desc=progress, disable=quiet or None, file=sys.stderr)

    def counted(shard: Shard, result: Any) -> None:
        on_result(shard, result)
        bar.update(1)

    try:
        return _run_shards(ray, shards, task, cfg, engine, manifest, counted, cpus, gpus, workers)
    finally:
        bar.close()


def _run_shards(
    ray: Any,
    shards: Sequence[Shard],
    task: str,
    cfg: Any,
    engine: dict[str, Any],
    manifest: Manifest,
    on_result: Callable[[Shard, Any], None],
    cpus: float,
    gpus: float,
    workers: int | None,
) -> RunStats:
    stats = RunStats()
    todo: deque[Shard] = deque()
    for s in sorted(shards, key=_weight, reverse=True):  # largest first: the last ones finish together
        saved = manifest.load(s)
        if saved is None:
            todo.append(s)
        else:
            stats.resumed += 1
            on_result(s, saved)
    if not todo:
        return stats
    from ray.exceptions import RayTaskError

    died = died_errors()
    actor_cls = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(ShardWorker)

    def spawn() -> list[Any]:
        have = ray.available_resources() if stats.workers else ray.cluster_resources()
        n = int(have.get("CPU", 0) // cpus) if cpus else len(todo)
        if gpus:
            n = min(n, int(have.get("GPU", 0) // gpus))
        n = max(1, min(n, len(todo), workers or n))
        stats.workers += n
        return [actor_cls.remote() for _ in range(n)]

    idle = spawn()
    running: dict[Any, tuple[Any, Shard]] = {}
    tries: dict[Shard, int] = {}
    try:
        while todo or running:
            while idle and todo:
                actor, shard = idle.pop(), todo.popleft()
                running[actor.run.remote(task, shard, cfg, engine)] = (actor, shard)
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                actor, shard = running.pop(ref)
                try:
                    result, node = ray.get(ref)
                except died as exc:
                    tries[shard] = tries.get(shard, 0) + 1
                    stats.retried += 1
                    log.warning(
                        "shard %s#%d: worker died (%s); running it again",
                        shard.path,
                        shard.index,
                        type(exc).__name__,
                    )
                    if tries[shard] >= MAX_TRIES:
                        raise ClusterError(
                            f"{shard.path}: shard {shard.index + 1}/{shard.count} lost its worker "
                            f"{MAX_TRIES} times; check the cluster's nodes (ray status)"
                        ) from None
                    todo.appendleft(shard)
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
                    if not idle and not running:
                        idle = spawn()
                    continue
                except RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, BaseException) else None
                    if cause is not None:
                        raise cause from None
                    raise ClusterError(f"{shard.path}: {str(exc).splitlines()[-1]}") from None
                manifest.save(shard, result)
                stats.ran += 1
                stats.nodes[node] = stats.nodes.get(node, 0) + 1
                on_result(shard, result)
                idle.append(actor)
    finally:
        for ref in running:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        for actor in idle + [a for a, _ in running.values()]:
            with contextlib.suppress(Exception):
                ray.kill(actor)
    return stats


def _weight(shard: Shard) -> float:
    """A shard's share of its file's bytes: what its decoding costs, roughly."""
    try:
        return os.path.getsize(shard.path) / shard.count
    except OSError:
        return 0.0


def print_stats(stats: RunStats) -> None:
    parts = [f"{stats.ran} shard{'s' if stats.ran != 1 else ''} on {len(stats.nodes)} node(s)"]
    if stats.resumed:
        parts.append(f"{stats.resumed} resumed from the manifest")
    if stats.retried:
        parts.append(f"{stats.retried} re-run after a worker died")
    print("ray: " + ", ".join(parts), file=sys.stderr)
