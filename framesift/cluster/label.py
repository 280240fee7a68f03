"""``framesift label --ray``: a store's frames (or a folder's images) cut into chunks of consecutive
frames, each chunk a shard: an ordinary ``label`` pipeline over a source restricted to its chunk
(``offset``/``limit``) whose ``labels`` sink writes a partial dataset into the run's manifest folder.
When every chunk is in, the driver merges the parts in chunk order into one dataset equal to a local
run's: the same images (hard-linked or copied from the parts), COCO ids renumbered in the local
run's order, the same YOLO files. Frames stay on the worker that read them; the store and the output
folder must be on storage every node reads and writes at the same path.

A chunk whose worker died runs again into a fresh part folder (what the dead worker left is removed
first), and the merge reads each chunk's part once, so nothing is duplicated."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framesift.cluster.shards import Shard
from framesift.engines.base import Embedder


@dataclass
class LabelChunks:
    """The local run's config (as a dict: one source, the detect analyzer, the labels sink) and the
    part folder of each chunk (by shard index)."""

    config: dict[str, Any]
    parts: dict[int, str] = field(default_factory=dict)

    def uses_embedder(self) -> bool:
        return False  # the detect analyzer builds its own engines


@dataclass
class ChunkResult:
    index: int
    images: int
    annotations: int


def plan(path: str, total: int, chunk: int) -> list[Shard]:
    """``total`` frames as chunks of ``chunk`` consecutive frames (the last one shorter)."""
    count = -(-total // chunk)
    return [
        Shard(path, i, count, i * chunk, i * chunk, min(total, (i + 1) * chunk), min(total, (i + 1) * chunk))
        for i in range(count)
    ]


def chunk_config(config: dict[str, Any], shard: Shard, part: str) -> dict[str, Any]:
    """The local run's config with its source restricted to ``shard``'s frames, its sink into ``part``."""
    out = copy.deepcopy(config)
    end = shard.own_end if shard.own_end is not None else shard.own_start + 1
    out["sources"][0].update(offset=shard.own_start, limit=end - shard.own_start)
    out["sinks"][0]["dir"] = part
    return out


def run_chunk(
    shard: Shard, job: LabelChunks, engine: dict[str, Any], embedder: Embedder | None = None
) -> ChunkResult:
    """Label ``shard``'s frames into its part folder (emptied first: a retried chunk starts afresh)."""
    from framesift.config import parse_config
    from framesift.pipeline import Pipeline
    from framesift.sinks.labels import LabelsSink

    part = job.parts[shard.index]
    shutil.rmtree(part, ignore_errors=True)
    Path(part).mkdir(parents=True)  # the chunk is under way (its pipeline loads its models first)
    pipeline = Pipeline(parse_config(chunk_config(job.config, shard, part), where="label"))
    pipeline.run()
    counts = next(w.sink.counts for w in pipeline.sinks.workers if isinstance(w.sink, LabelsSink))
    return ChunkResult(shard.index, counts["images"], counts["annotations"])


def input_ident(source: dict[str, Any]) -> str:
    """What the input holds, for the manifest's keys: the store's index file, or the image listing."""
    from framesift.store.index import INDEX_NAME
    from framesift.store.paths import resolve_store_dir

    if source["type"] == "store":
        st = os.stat(Path(resolve_store_dir(source["path"])) / INDEX_NAME)
        return f"{st.st_size}:{st.st_mtime_ns}"
    from framesift.stream.sources.images import list_images

    h = hashlib.sha1()
    for p in list_images(source["path"]):
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def prepare(config: dict[str, Any], total: int, chunk: int) -> tuple[list[Shard], Any, LabelChunks]:
    """The chunks, the manifest (``OUTPUT/.framesift-ray/label``) and the job: each chunk's part folder
    is ``parts/KEY`` beside the manifest. A saved chunk whose part is not a closed dataset runs again."""
    from framesift.cluster.ray_exec import Manifest

    source, sink = config["sources"][0], config["sinks"][0]
    shards = plan(source["path"], total, chunk)
    salt = json.dumps([config, input_ident(source), chunk], sort_keys=True, default=str)
    manifest = Manifest(Path(sink["dir"]) / ".framesift-ray" / "label", shards, salt)
    job = LabelChunks(config, {s.index: str(manifest.dir / "parts" / manifest.keys[s]) for s in shards})
    closed = "annotations.json" if sink["format"] == "coco" else "data.yaml"  # written last
    for s in shards:
        if not (Path(job.parts[s.index]) / closed).is_file():
            (manifest.dir / f"{manifest.keys[s]}.pkl").unlink(missing_ok=True)
    return shards, manifest, job


def run_on_ray(
    config: dict[str, Any],
    *,
    total: int,
    chunk: int,
    address: str,
    gpus: float = 0.0,
    quiet: bool = True,
) -> tuple[dict[str, int], Any]:
    """Label ``total`` frames in chunks on the cluster and merge them into the sink's folder; returns
    the dataset's counts (images, annotations) and the run's stats."""
    from framesift.cluster.ray_exec import RunStats, connect, run_shards
    from framesift.labels import LabelWriter

    sink = config["sinks"][0]
    out = Path(sink["dir"])
    shards, manifest, job = prepare(config, total, chunk)
    folder = manifest.dir
    results: dict[int, ChunkResult] = {}
    stats = RunStats()
    if shards:
        ray = connect(address)

        def on_result(shard: Shard, result: ChunkResult) -> None:
            results[shard.index] = result

        stats = run_shards(
            ray, shards, "framesift.cluster.label:run_chunk", job, {}, manifest=manifest,
            on_result=on_result, gpus=gpus, progress="ray", unit="chunk", quiet=quiet,
        )  # fmt: skip
    writer = LabelWriter(out, sink["classes"], fmt=sink["format"], mask_format=sink["masks"])
    for shard in shards:  # chunk order: the local run's order
        writer.add_part(Path(job.parts[shard.index]))
    counts = writer.close()
    manifest.clear()  # before the parts: a saved chunk always has its part
    shutil.rmtree(folder, ignore_errors=True)
    with_parent = out / ".framesift-ray"
    if with_parent.is_dir() and not any(with_parent.iterdir()):
        with_parent.rmdir()
    return counts, stats
