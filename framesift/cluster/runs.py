"""Whole-file runs on the cluster: a shard per file, whose pipeline config the command built and
whose sinks write that file's outputs (on shared storage). ``framesift detect --ray`` runs this way:
a track never crosses a file, so each file's tracks equal a local run's. A retried shard rewrites
the same files (sinks write to a temporary name, then rename), so nothing is duplicated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from framesift.cluster.shards import Shard
from framesift.config import PipelineConfig
from framesift.engines.base import Embedder


@dataclass
class FileRuns:
    """The pipeline config of each file (by path)."""

    configs: dict[str, PipelineConfig] = field(default_factory=dict)

    def uses_embedder(self) -> bool:
        return False  # each config's analyzers build their own engines


@dataclass
class RunResult:
    path: str
    frames: int
    tracks: int


def run_shard(
    shard: Shard, job: FileRuns, engine: dict[str, Any], embedder: Embedder | None = None
) -> RunResult:
    """Run the file's pipeline; report its frames and the tracks its trackers started."""
    from framesift.analyzers.tracking import TrackingAnalyzer
    from framesift.pipeline import Pipeline

    pipeline = Pipeline(job.configs[shard.path])
    pipeline.run()
    frames = sum(s.frames_staged for s in pipeline.status().sources.values())
    tracks = sum(a.started for a in pipeline.analyzers if isinstance(a, TrackingAnalyzer))
    return RunResult(shard.path, frames, tracks)


def run_on_ray(
    job: FileRuns, *, address: str, manifest_dir: Any, gpus: float = 0.0, quiet: bool = True
) -> tuple[list[RunResult], Any]:
    """Every file of ``job`` as one shard on the cluster; results in the job's order."""
    import json

    from framesift.cluster.ray_exec import Manifest, connect, run_shards

    shards = [Shard(p, 0, 1, 0, 0, None, None) for p in job.configs]
    salt = json.dumps(
        {p: c.model_dump(mode="json") for p, c in job.configs.items()}, sort_keys=True, default=str
    )
    manifest = Manifest(manifest_dir, shards, salt)
    ray = connect(address)
    results: dict[str, RunResult] = {}

    def on_result(shard: Shard, result: RunResult) -> None:
        results[shard.path] = result

    stats = run_shards(
        ray, shards, "framesift.cluster.runs:run_shard", job, {}, manifest=manifest,
        on_result=on_result, gpus=gpus, progress="ray", unit="file", quiet=quiet,
    )  # fmt: skip
    manifest.clear()
    return [results[p] for p in job.configs], stats
