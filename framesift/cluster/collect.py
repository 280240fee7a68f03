"""``framesift collect --ray``: collection as shards, one store.

Each shard runs the ``collect`` pipeline over its frame range. With a total budget (``--budget N``,
per file) a shard keeps nothing: it *proposes* the segments (shots, and the later content of long
shots) that start in the frames it owns, each with its best candidate and a few extras (embeddings
plus JPEGs), bounded as the collector's pool bounds them. Once all shards of a file are in, one
:func:`select` over every proposal (the collector's own, with the store's memory bank) picks the N
frames the store receives. Without a total budget a shard's keeps at its owned frames are the result.

Frame ids are ``SOURCE-FRAMEINDEX``: a frame already in the store is not written again, so a run
that is retried or resumed never duplicates a frame. The collector's memory bank is sequential;
shards start with the store's bank, not with what earlier shards kept, so a run on Ray may keep
other frames than a local run (its shot coverage is measured against the local run's).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from framesift.analyzers.collector import Collector, CollectorConfig
from framesift.analyzers.collector_select import Pool
from framesift.analyzers.collector_shots import Segment
from framesift.analyzers.collector_state import SourceState
from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.cluster.shards import Shard, layouts, lookback_frames, plan_file, tail_frames, unread
from framesift.engines.base import Embedder
from framesift.errors import SourceError
from framesift.events import Event, FrameKept, FramePayload
from framesift.frame import Frame
from framesift.sinks.base import Sink


@dataclass
class CollectShardResult:
    shard: Shard
    source: str = ""
    proposals: list[Segment] = field(default_factory=list)  # total budget: segments it owns
    # no total budget: keeps at frames it owns, as (event without payload, image, embedding, model)
    kept: list[tuple[FrameKept, Any, Any, str | None]] = field(default_factory=list)
    frames: int = 0


class ShardCollector(Collector):
    """The collector of a shard: at the end it hands its pool's owned segments over instead of
    choosing from them."""

    shard: Shard
    result: CollectShardResult

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> Iterable[Event]:
        r, s = self.result, self.shard
        r.source, r.frames = frame.source_id, r.frames + 1
        if self._t_lo is None and frame.index >= s.own_start:
            self._t_lo = frame.seconds
        if self._t_hi is None and s.own_end is not None and frame.index >= s.own_end:
            self._t_hi = frame.seconds
        return super().on_frame(frame, embedding)

    def _spend_total(self, source: str, st: SourceState, pool: Pool) -> list[Event]:
        lo, hi = self._t_lo, self._t_hi
        self.result.proposals = [
            seg
            for seg in pool.segments
            if lo is not None and seg.start >= lo and (hi is None or seg.start < hi)
        ]
        pool.segments = []
        return []

    _t_lo: float | None = None
    _t_hi: float | None = None


class _Kept(Sink):
    name = "shard_kept"
    accepts = (FrameKept,)

    def __init__(self, result: CollectShardResult) -> None:
        self.r = result

    def write(self, event: Event) -> None:
        if isinstance(event, FrameKept) and self.r.shard.owns(event.frame_index):
            taken = event.payload.take() if event.payload is not None else None
            if taken is not None:  # the payload holds a lock: ship its contents, not itself
                self.r.kept.append((replace(event, payload=None), *taken))


def run_shard(
    shard: Shard, cfg: CollectorConfig, engine: dict[str, Any], embedder: Embedder | None = None
) -> CollectShardResult:
    """One shard of ``collect``: its pipeline over the shard's frames with a proposing collector."""
    from framesift.cli.inputs import analysis_frames, source_config
    from framesift.config import parse_config
    from framesift.pipeline import Pipeline

    start, end = shard.window_s()
    src = source_config(shard.path, fps=None)
    if embedder is not None:
        src = analysis_frames(src, embedder.name)  # as a local run: the same frames kept
    if start is not None:
        src["start"] = start
    if end is not None:
        src["end"] = end
    pipeline_cfg = parse_config({"sources": [src], "metrics": {"enabled": False}}, where="collect shard")
    result = CollectShardResult(shard)
    collector = ShardCollector.from_config(cfg, embedder)
    assert isinstance(collector, ShardCollector)
    collector.shard, collector.result = shard, result
    Pipeline(pipeline_cfg, embedder=embedder, analyzers=[collector], sinks=[_Kept(result)]).run()
    return result


def plan(paths: Sequence[str], shard_seconds: float) -> tuple[list[Shard], list[SourceError]]:
    """Shards for collection: the shot detector's look-back before, its decision delay after; and
    the files that cannot be read (left out)."""
    shots = SceneChangeConfig()
    found, errors = layouts(paths)
    out: list[Shard] = []
    for p, layout in found.items():
        n = max(1, round(shard_seconds * float(layout[0]))) if layout else 1
        out += plan_file(
            p, layout, shard_frames=n, lookback=lookback_frames(shots), tail=tail_frames(shots) + 8
        )
    return out, errors


def merge(results: Sequence[CollectShardResult], collector: Collector) -> list[FrameKept]:
    """One file's keeps: with a total budget, the collector's selection over every shard's
    proposals (``collector`` holds the store's memory bank); else the shards' keeps. Ids are
    ``SOURCE-FRAMEINDEX``, in time order."""
    parts = sorted(results, key=lambda r: r.shard.index)
    source = next((r.source for r in parts if r.source), Path(parts[0].shard.path).stem)
    if collector.cfg.budget is not None:
        st = collector._state(source)
        assert st.pool is not None
        st.pool.segments = sorted((seg for r in parts for seg in r.proposals), key=lambda s: s.start)
        kept = [e for e in collector._spend_total(source, st, st.pool) if isinstance(e, FrameKept)]
    else:
        rows = sorted((k for r in parts for k in r.kept), key=lambda k: k[0].frame_index)
        kept = [replace(e, payload=FramePayload(image, emb, model)) for e, image, emb, model in rows]
    return [replace(e, id=f"{e.source}-{e.frame_index:08d}") for e in kept]


def run_on_ray(
    paths: Sequence[str],
    ccfg: CollectorConfig,
    engine: dict[str, Any],
    collector: Collector,
    sinks: Sequence[Sink],
    store: Any,
    *,
    address: str,
    manifest_dir: Path,
    shard_seconds: float = 600.0,
    gpus: float = 0.0,
    quiet: bool = True,
) -> tuple[dict[str, int], Any]:
    """``framesift collect --ray``: shard ``paths``, run the shards on the cluster, merge each file
    as its last shard arrives and hand its keeps to ``sinks`` (opened and closed here); a frame
    whose id ``store`` already holds is skipped. A merged file is marked in the manifest, which
    stays: the same command again skips it (its keeps are in the store), so an archive job can be
    re-run until every file is in. Returns ``{"kept", "present", "files_done"}`` and the stats."""
    import json

    from framesift.cluster.ray_exec import Manifest, connect, run_shards

    salt = json.dumps(["collect", ccfg.model_dump(mode="json"), engine], sort_keys=True)
    shards, unreadable = plan(paths, shard_seconds)
    manifest = Manifest(manifest_dir, shards, salt)
    done = [p for p in paths if manifest.merged(p)]
    shards = [s for s in shards if s.path not in done]
    ray = connect(address)
    parts: dict[str, list[CollectShardResult]] = {}
    counts = {s.path: s.count for s in shards}
    tally = {"kept": 0, "present": 0, "files_done": len(done)}
    for sink in sinks:
        sink.open()

    def on_result(shard: Shard, result: CollectShardResult) -> None:
        got = parts.setdefault(shard.path, [])
        got.append(result)
        if len(got) < counts[shard.path]:
            return
        events = merge(parts.pop(shard.path), collector)
        for event in events:
            if store.get(event.id) is not None:  # written by an earlier, interrupted merge
                tally["present"] += 1
                continue
            tally["kept"] += 1
            for sink in sinks:
                if sink.accepts is None or isinstance(event, sink.accepts):
                    sink.write(event)
        for sink in sinks:
            sink.flush()
        manifest.mark_merged(shard.path, [e.id or "" for e in events])

    try:
        stats = run_shards(
            ray, shards, "framesift.cluster.collect:run_shard", ccfg, engine, manifest=manifest,
            on_result=on_result, gpus=gpus, progress="collect (ray)", quiet=quiet,
        )  # fmt: skip
    finally:
        for sink in sinks:
            sink.close()
    unread(unreadable, len(paths))
    return tally, stats
