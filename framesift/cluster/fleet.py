"""A fleet: ``framesift run CONFIG --ray ADDRESS`` runs each live source of the config as a Ray actor
(:mod:`framesift.cluster.source_actor`) on the cluster's nodes, and the driver (this process) runs the
config's sinks once, the control API and the UI.

:class:`Fleet` is the driver's controller and implements :class:`SourceControl`, so the HTTP API and
the UI work as for a local pipeline. A poller thread asks every actor for a bounded batch of events
and its status a few times a second and feeds the events to the one sink set. When an actor's node
dies (its calls fail, or Ray reports the node dead), the source is started again on another alive
node and a :class:`~framesift.events.SourceMoved` event says from where to where and how many events
the dead node still held undelivered by its last report (lost).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from framesift.cluster.source_actor import Report, SourceActor, merged_stage, placeholder_info
from framesift.config import MetricsConfig, PipelineConfig, SourceConfig
from framesift.errors import ConfigError, NotAccepting, SourceError, SourceIdTaken
from framesift.events import Event, SourceMoved
from framesift.pipeline.sinks import SinkSet
from framesift.pipeline.status import EventLog, PipelineStatus, SinkInfo, SourceInfo

log = logging.getLogger("framesift.cluster")

POLL_S = 0.25  # between polls of every actor
BATCH = 512  # events one poll takes from an actor at most
NODE_CHECK_S = 2.0  # between looks at the cluster's alive nodes
START_TIMEOUT_S = 120.0  # for actors to be placed and their pipelines started
STOP_TIMEOUT_S = 30.0
MAX_MOVES = 5  # restarts of a source in a row (no report between them) before it is marked failed


def check_fleet(config: PipelineConfig) -> None:
    """ConfigError (one line) for what a fleet cannot run: sources that end, sinks that need frames."""
    for i, src in enumerate(config.sources):
        if src.ends():
            raise ConfigError(
                f"sources[{i}] ({src.type_name()} {src.input()}): a fleet runs live sources and this one "
                "ends; set realtime: true or loop: true, or use `framesift scenes|collect --ray` for archives"
            )
    for i, sink in enumerate(config.sinks):
        if sink.needs_frames:
            raise ConfigError(
                f"sinks[{i}] ({sink.type_name()}): needs the frames, which stay on the node that decodes "
                "them; a fleet delivers events only (remove it, or run without --ray)"
            )


@dataclass
class Member:
    """One source of the fleet and the actor that runs it."""

    cfg: SourceConfig
    actor: Any
    target: str | None  # the node it was placed on (soft affinity); None: where Ray spread it
    info: SourceInfo
    node: str | None = None  # known once the actor answered ready()
    pending: Any = None  # the call in flight: ready() until the node is known, then poll()
    report: Report | None = None  # the last poll's answer
    moving: tuple[str, str, int] | None = None  # (from node, reason, lost events) until placed again
    failed: str | None = None
    moves_in_a_row: int = 0
    added: bool = False  # over the control API: its failure does not fail the run

    def fail(self, sid: str, error: str) -> str:
        """Mark it failed with a one-line reason naming the source; returns that reason."""
        failed = error if error.startswith(f"source {sid}") else f"source {sid}: {error}"
        self.failed, self.pending = failed, None
        self.info = replace(self.info, state="failed", detail=failed)
        log.error("%s", failed)
        return failed


class Fleet:
    """The driver of a fleet: places the sources' actors, polls them, runs the sinks, restarts the
    sources of a dead node elsewhere; :class:`SourceControl` for the HTTP API and the UI."""

    def __init__(self, config: PipelineConfig, ray: Any = None, *, poll_s: float = POLL_S) -> None:
        """Check ``config`` (ConfigError), then join the cluster ``cluster.ray`` names (or use ``ray``,
        the module, already connected)."""
        from framesift.cluster.ray_exec import connect

        if config.cluster is None:
            raise ConfigError("a fleet needs cluster: {ray: ADDRESS} in the config, or --ray ADDRESS")
        check_fleet(config)
        self.config, self.ray, self.poll_s = config, ray or connect(config.cluster.ray), poll_s
        self.cluster = config.cluster
        self.events = EventLog()
        self.sinks = SinkSet(config.sinks, [], block=False)
        self.accepts_sources = bool(config.metrics.enabled and config.metrics.control)
        self._members: dict[str, Member] = {}
        self._lock = threading.RLock()
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "new"
        self._started_at = 0.0
        self.error: BaseException | None = None
        self._actor_cls = self.ray.remote(num_cpus=self.cluster.cpus_per_source, max_restarts=0)(SourceActor)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the sinks, place every source's actor and wait until each pipeline started."""
        from framesift.pipeline.sources import unique_source_ids

        if self._state != "new":
            raise RuntimeError("a Fleet can be started once")
        self._state, self._started_at = "running", time.time()
        try:
            ids = unique_source_ids(self.config.sources)
            self.sinks.start()
            with self._lock:
                for cfg, sid in zip(self.config.sources, ids, strict=True):
                    cfg = cfg.model_copy(update={"id": sid})  # its actor's one source: the same id
                    self._members[sid] = Member(cfg, *self._spawn(cfg), placeholder_info(cfg, "placing"))
            self._await_ready(list(self._members.items()))
        except BaseException:
            self._finish()
            raise
        self._thread = threading.Thread(target=self._run, name="fleet-poller", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop_requested.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until a stop is asked (or, without the control API, every source ended), stop, and
        raise the poller's failure. False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state == "running" and not self._stop_requested.is_set() and self.error is None:
            with self._lock:
                members = list(self._members.values())
            if (members or not self.accepts_sources) and all(m.info.ended or m.failed for m in members):
                break
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._stop_requested.wait(0.1)
        self._finish()
        if self.error is not None:
            raise self.error
        failed = [m.failed for m in self._members.values() if m.failed and not m.added]
        if failed:  # as a local run: a configured source's failure fails the run, after the drain
            raise SourceError(failed[0])
        return True

    def stop(self) -> None:
        self.request_stop()
        self._finish()

    def _finish(self) -> None:
        """Stop the poller, drain every actor's pipeline into the sinks, then close the sinks."""
        if self._state in ("stopping", "stopped", "new"):
            return
        self._state = "stopping"
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            members = list(self._members.items())
        self._drain(members)
        self.sinks.stop()
        self._state = "stopped"

    def _drain(self, members: list[tuple[str, Member]]) -> None:
        """Stop the members' pipelines; the events of their calls in flight and of the stop go to the
        sinks. All at once: a dead node's actor costs the timeout once, not once per source."""
        calls = [
            (sid, m, [c for c in (m.pending, m.actor.stop.remote()) if c is not None]) for sid, m in members
        ]
        every = [ref for _, _, refs in calls for ref in refs]
        done = set(self.ray.wait(every, num_returns=len(every), timeout=STOP_TIMEOUT_S)[0] if every else [])
        for sid, m, refs in calls:
            for ref in refs:  # the call in flight first: an actor answers in order
                with contextlib.suppress(Exception):
                    answer = self.ray.get(ref) if ref in done else None
                    if isinstance(answer, Report):
                        self._deliver(sid, m, answer)
            self._kill(m.actor)

    # -- placement ---------------------------------------------------------------------------------

    def _spawn(self, cfg: SourceConfig, avoid: str | None = None) -> tuple[Any, str | None]:
        """A new actor for ``cfg`` on the alive node holding the fewest sources (not ``avoid``), and
        that node (None: Ray spreads it)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        counts: dict[str, int] = {}
        for n in self.ray.nodes():
            if (
                n["Alive"]
                and n["NodeID"] != avoid
                and n["Resources"].get("CPU", 0) >= self.cluster.cpus_per_source
            ):
                counts[n["NodeID"]] = 0
        for m in self._members.values():
            on = m.node or m.target
            if on in counts:
                counts[on] += 1
        target = min(counts, key=lambda k: counts[k]) if counts else None
        strategy: Any = "SPREAD" if target is None else NodeAffinitySchedulingStrategy(target, soft=True)
        pcfg = self.config.model_copy(
            update={"sources": [cfg], "sinks": [], "metrics": MetricsConfig(enabled=False), "cluster": None}
        )
        actor = self._actor_cls.options(scheduling_strategy=strategy).remote(pcfg, self.cluster.event_queue)
        return actor, target

    def _await_ready(self, members: list[tuple[str, Member]]) -> None:
        """Wait until the actors answer where they run; SourceError (one line) if one failed to start."""
        refs = [m.actor.ready.remote() for _, m in members]
        try:
            answers = self.ray.get(refs, timeout=START_TIMEOUT_S)
        except Exception as exc:
            from ray.exceptions import GetTimeoutError

            from framesift.cluster.ray_exec import ClusterError

            why = (
                f"did not start in {START_TIMEOUT_S:.0f} s; each needs {self.cluster.cpus_per_source} CPU "
                "(cluster.cpus_per_source)"
                if isinstance(exc, GetTimeoutError)
                else f"died while starting ({type(exc).__name__})"
            )
            raise ClusterError(f"fleet: a source's actor {why}: check the cluster (ray status)") from None
        for (sid, m), (node, error) in zip(members, answers, strict=True):
            if error is not None:
                raise SourceError(m.fail(sid, error))
            m.node, m.info = node, replace(m.info, node=node)

    def _relocate(self, sid: str, m: Member, reason: str) -> None:
        """Start ``sid`` again on another node; what its old node held undelivered is lost. An actor
        lost again before it reported keeps the move's first node and count."""
        old, _, lost = m.moving or (m.node or m.target or "?", reason, 0)
        lost += m.report.pending if m.report is not None else 0
        log.warning(
            "source %s: %s on node %s; starting it on another node (%d events lost)", sid, reason, old, lost
        )
        self._kill(m.actor)
        m.moves_in_a_row += 1
        if m.moves_in_a_row > MAX_MOVES:
            m.fail(sid, f"lost its actor {MAX_MOVES} times in a row; check the cluster's nodes (ray status)")
            return
        (m.actor, m.target), m.node, m.pending, m.report = self._spawn(m.cfg, avoid=m.node), None, None, None
        m.moving = (old, reason, lost)
        m.info = placeholder_info(m.cfg, f"moving from node {old} ({reason})")

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):
            self.ray.kill(actor, no_restart=True)

    # -- the poller --------------------------------------------------------------------------------

    def _run(self) -> None:
        next_check = 0.0
        try:
            while not self._stop_requested.is_set():
                t0 = time.monotonic()
                if t0 >= next_check:
                    self._check_nodes()
                    next_check = t0 + NODE_CHECK_S
                self._tick()
                self._stop_requested.wait(max(0.0, self.poll_s - (time.monotonic() - t0)))
        except Exception as exc:  # a bug: the run stops and join() raises it
            log.error("fleet poller failed: %s: %s", type(exc).__name__, exc)
            self.error = exc
            self._stop_requested.set()

    def _check_nodes(self) -> None:
        alive = {n["NodeID"] for n in self.ray.nodes() if n["Alive"]}
        with self._lock:
            for sid, m in list(self._members.items()):
                if m.node is not None and m.node not in alive and not m.failed:
                    self._relocate(sid, m, "node died")

    def _tick(self) -> None:
        with self._lock:
            for m in self._members.values():
                if m.pending is None and not m.failed:
                    m.pending = m.actor.poll.remote(BATCH) if m.node else m.actor.ready.remote()
            refs = [m.pending for m in self._members.values() if m.pending is not None]
        if not refs:
            return
        done = set(self.ray.wait(refs, num_returns=len(refs), timeout=self.poll_s)[0])
        with self._lock:
            for sid, m in list(self._members.items()):
                if m.pending is not None and m.pending in done:
                    self._answer(sid, m)

    def _answer(self, sid: str, m: Member) -> None:
        """Take the answer of ``m``'s call in flight (under the lock)."""
        from framesift.cluster.ray_exec import died_errors

        died = died_errors()
        ref, m.pending = m.pending, None
        try:
            answer = self.ray.get(ref)
        except died as exc:
            self._relocate(sid, m, f"its actor died ({type(exc).__name__})")
            return
        if isinstance(answer, Report):
            self._deliver(sid, m, answer)
            return
        node, error = answer
        m.node, m.info = node, replace(m.info, node=node)
        if m.moving is not None:
            old, reason, lost = m.moving
            m.moving = None
            self._emit(SourceMoved(source=sid, from_node=old, to_node=node, reason=reason, lost_events=lost))
            log.warning("source %s moved from node %s to node %s (%d events lost)", sid, old, node, lost)
        if error is not None:
            m.fail(sid, error)

    def _deliver(self, sid: str, m: Member, report: Report) -> None:
        for ev in report.events:
            self._emit(ev)
        m.report, m.moves_in_a_row = report, 0
        if report.status is not None and sid in report.status.sources:
            m.info = replace(report.status.sources[sid], node=m.node)
        if report.error is not None and m.failed is None:
            m.fail(sid, report.error)

    def _emit(self, event: Event) -> None:
        self.events.append(event)
        self.sinks.submit(event)

    # -- SourceControl -----------------------------------------------------------------------------

    def add_source(self, cfg: SourceConfig) -> str:
        """Start a new source on the least busy node; returns its id."""
        from framesift.stream.factory import source_id_for

        check_fleet(self.config.model_copy(update={"sources": [cfg], "sinks": []}))
        sid = source_id_for(cfg)
        with self._lock:
            if self._state != "running" or self._stop_requested.is_set():
                raise NotAccepting(f"fleet is {self._state}: sources can be added only while it runs")
            if sid in self._members:
                raise SourceIdTaken(f"source id {sid!r} is already in use (choose another id)")
            m = Member(cfg, *self._spawn(cfg), placeholder_info(cfg, "placing"), added=True)
        try:
            self._await_ready([(sid, m)])
        except BaseException:
            self._kill(m.actor)
            raise
        with self._lock:
            if sid in self._members:
                self._kill(m.actor)
                raise SourceIdTaken(f"source id {sid!r} is already in use (choose another id)")
            self._members[sid] = m
        log.info("source %s added on node %s", sid, m.node)
        return sid

    def remove_source(self, source_id: str) -> SourceInfo:
        """Stop a source: its pipeline drains and its last events reach the sinks; its last status."""
        with self._lock:
            m = self._members.pop(source_id)  # KeyError for an unknown id
        self._drain([(source_id, m)])
        self.sinks.flush(STOP_TIMEOUT_S)
        self.sinks.forget(source_id)
        log.info("source %s removed", source_id)
        return m.info

    def latest_image(self, source_id: str) -> Any | None:
        m = self._members.get(source_id)
        if m is None or m.node is None:
            return None
        try:
            return self.ray.get(m.actor.preview.remote(source_id), timeout=5.0)
        except Exception:
            return None

    def healthy(self) -> bool:
        return self._state == "running" and self.error is None

    def status(self) -> PipelineStatus:
        with self._lock:
            members = list(self._members.items())
        stages = [m.report.status.stage for _, m in members if m.report is not None and m.report.status]
        stage = merged_stage(stages, [a.type_name() for a in self.config.analyzers])
        sinks = self.sinks.infos()
        for sid, m in members:  # each node's outbox: events held for the driver, and dropped
            if m.report is not None:
                counts = {"dropped:queue_full": m.report.dropped}
                sinks[f"outbox:{sid}"] = SinkInfo(m.report.pending, counts, {"node": m.node}, None)
        now = time.time()
        return PipelineStatus(
            state=self._state,
            uptime_s=round(now - self._started_at, 3) if self._started_at else 0.0,
            sources={sid: m.info for sid, m in members},
            stage=stage,
            sinks=sinks,
            control=self.accepts_sources,
        )
