"""Scene detection as shards: each shard is the ``scenes`` pipeline over a frame range of a file;
the merge keeps each shard's owned events and signal and writes the files through the same
``scene_report`` sink a local run writes them with.

A cut at a shard edge is found exactly once: the shard that owns its frame reports it, and every
shard warms up on :func:`~framesift.cluster.shards.lookback_frames` frames before the frames it
owns, so its decisions there equal the whole-file run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from framesift.analyzers.scene_change import SceneChangeConfig
from framesift.cluster.shards import Shard, layouts, lookback_frames, plan_file, tail_frames, unread
from framesift.engines.base import Embedder
from framesift.errors import SourceError
from framesift.events import Event, SceneChange, SceneSignal, SourceStatus
from framesift.pipeline import Pipeline
from framesift.scenes.detect import scene_pipeline
from framesift.sinks.base import Sink
from framesift.sinks.scene_report import SceneReportSink, report_sink


@dataclass
class SceneShardResult:
    """What a shard found, restricted to the frames it owns (small: no pictures beyond one per
    scene opening it owns)."""

    shard: Shard
    up: SourceStatus | None = None
    events: list[SceneChange] = field(default_factory=list)
    rows: list[tuple[int, float, float, float]] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    pictures: dict[int, Any] = field(default_factory=dict)
    frames: int = 0  # frames decoded (warm-up and tail included)
    last_frame: int = -1  # index of the last frame it decoded
    start_time: float | None = None
    end_time: float | None = None


class _Collect(Sink):
    """Keeps a shard's events at the frames it owns."""

    name = "shard"
    accepts = (SourceStatus, SceneChange, SceneSignal)

    def __init__(self, result: SceneShardResult) -> None:
        self.r = result

    def write(self, event: Event) -> None:
        r, owns = self.r, self.r.shard.owns
        if isinstance(event, SourceStatus):
            if event.state == "up" and r.up is None:
                r.up = event
        elif isinstance(event, SceneChange):
            if owns(event.frame_index):
                r.events.append(event)
        elif isinstance(event, SceneSignal):
            r.rows += [row for row in event.rows if owns(row[0])]
            if event.rows:
                r.last_frame = max(r.last_frame, event.rows[-1][0])
            r.labels.update({k: v for k, v in event.labels.items() if owns(k)})
            r.pictures.update({k: v for k, v in event.pictures.items() if owns(k)})
            if event.final:
                r.frames, r.start_time, r.end_time = event.frames, event.start_time, event.end_time


def run_shard(
    shard: Shard, cfg: SceneChangeConfig, engine: dict[str, Any], embedder: Embedder | None = None
) -> SceneShardResult:
    """One shard: the ``scenes`` pipeline over its frames, the owned events kept."""
    pipeline_cfg = scene_pipeline([shard.path], cfg, engine=engine)
    start, end = shard.window_s()
    if start is not None or end is not None:
        src = pipeline_cfg.sources[0]
        src = type(src)(**{**src.model_dump(), "start": start, "end": end})
        pipeline_cfg = pipeline_cfg.model_copy(update={"sources": [src]})
    result = SceneShardResult(shard)
    Pipeline(pipeline_cfg, embedder=embedder, sinks=[_Collect(result)]).run()
    return result


def plan(
    videos: Sequence[str], cfg: SceneChangeConfig, shard_seconds: float
) -> tuple[list[Shard], list[SourceError]]:
    """The shards of ``videos``: by file, and files longer than two shards by frame ranges; and
    the files that cannot be read (left out)."""
    found, errors = layouts(videos)
    out: list[Shard] = []
    for v, layout in found.items():
        n = max(1, round(shard_seconds * float(layout[0]))) if layout else 1
        out += plan_file(v, layout, shard_frames=n, lookback=lookback_frames(cfg), tail=tail_frames(cfg))
    return out, errors


def merge(results: Sequence[SceneShardResult], sink: SceneReportSink) -> None:
    """Feed one file's shard results (all of them, any order) to ``sink`` as one source's events."""
    parts = sorted(results, key=lambda r: r.shard.index)
    first, last = parts[0], parts[-1]
    src = first.up.source if first.up is not None else Path(first.shard.path).name
    if first.up is not None:
        sink.write(first.up)
    # scene numbers count from the file's start: renumber each shard's boundaries in file order
    events = sorted((e for r in parts for e in r.events), key=lambda e: e.frame_index)
    for n, e in enumerate(events, start=2):
        sink.write(e if e.scene_id == n else replace(e, scene_id=n))
    rows = [row for r in parts for row in r.rows]
    labels = {k: v for r in parts for k, v in r.labels.items()}
    pictures = {k: v for r in parts for k, v in r.pictures.items()}
    sink.write(SceneSignal(source=src, rows=tuple(rows), labels=labels, pictures=pictures))
    frames = first.frames if len(parts) == 1 else last.last_frame + 1
    sink.write(
        SceneSignal(
            source=src, final=True, frames=frames, start_time=first.start_time, end_time=last.end_time
        )
    )


def run_on_ray(
    videos: Sequence[str],
    out: str,
    cfg: SceneChangeConfig,
    engine: dict[str, Any],
    opts: dict[str, bool],
    *,
    address: str,
    shard_seconds: float = 600.0,
    gpus: float = 0.0,
    quiet: bool = True,
) -> tuple[list[str], Any]:
    """``framesift scenes --ray``: shard ``videos``, run the shards on the cluster, merge each file
    as its last shard arrives and write its files. Returns a summary line per video and the run's
    :class:`~framesift.cluster.ray_exec.RunStats`."""

    from framesift.cluster.ray_exec import Manifest, connect, run_shards

    shards, unreadable = plan(videos, cfg, shard_seconds)
    salt = json_salt(cfg, engine)
    manifest = Manifest(Path(out) / ".framesift-ray" / "scenes", shards, salt)
    ray = connect(address)
    sink = report_sink(out, opts, cfg.mode)
    sink.open()
    parts: dict[str, list[SceneShardResult]] = {}
    counts = {s.path: s.count for s in shards}

    def on_result(shard: Shard, result: SceneShardResult) -> None:
        got = parts.setdefault(shard.path, [])
        got.append(result)
        if len(got) == counts[shard.path]:
            merge(parts.pop(shard.path), sink)

    try:
        stats = run_shards(
            ray,
            shards,
            "framesift.cluster.scenes:run_shard",
            cfg,
            engine,
            manifest=manifest,
            on_result=on_result,
            gpus=gpus,
            progress="scenes (ray)",
            quiet=quiet,
        )
    finally:
        sink.close()
    manifest.clear()
    unread(unreadable, len(videos))
    lines = []
    order = {str(v): i for i, v in enumerate(videos)}
    for w in sorted(sink.written, key=lambda w: order.get(w.video, len(order))):
        report = w.paths.get("html", w.paths.get("csv", ""))
        lines.append(
            f"{w.video}: {w.scenes} scene{'' if w.scenes == 1 else 's'} in {w.frames} frames → {report}"
        )
    return lines, stats


def json_salt(cfg: SceneChangeConfig, engine: dict[str, Any]) -> str:
    import json

    return json.dumps(["scenes", cfg.model_dump(mode="json"), engine], sort_keys=True)
