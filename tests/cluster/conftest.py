"""A real Ray cluster on 127.0.0.1: a head node (1 CPU) for the module, and a second worker node
(1 CPU, its own ``worker2`` resource) per test, each started with ``ray start --block`` in its own
process group and stopped by that group's id."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from framesift.samples_scenes import SceneClipInfo, cuts_timeline, mixed_timeline

REPO = Path(__file__).resolve().parents[2]
RAY_BIN = str(Path(sys.executable).with_name("ray"))
# A loopback-only test cluster: no token (Ray's token would be read from and written to ~/.ray).
AUTH_OFF = {"RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),  # workers import this checkout
        "RAY_USAGE_STATS_ENABLED": "0",
        **AUTH_OFF,
    }


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                RAY_BIN,
                "start",
                "--block",
                "--num-cpus=1",
                "--num-gpus=0",
                "--object-store-memory=80000000",
                *args,
            ],
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: raylet and workers stop with it
        )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """SIGTERM: ``ray start --block`` stops its node's processes itself; SIGKILL: the whole group."""
    if proc.poll() is None:
        try:
            if sig == signal.SIGKILL:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass
    with contextlib.suppress(ProcessLookupError):  # anything of the group still there
        os.killpg(proc.pid, signal.SIGKILL)


def _wait(check: Any, what: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s:\n{log.read_text()[-2000:]}")


@dataclass
class Archive:
    long: SceneClipInfo  # cut into shards (a keyframe every second)
    short: SceneClipInfo  # one shard

    @property
    def paths(self) -> list[str]:
        return [str(self.long.path), str(self.short.path)]


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """Two generated clips with known transitions: a long one (two mixed timelines, 30 s) and a short one."""
    folder = tmp_path_factory.mktemp("archive")
    tl = mixed_timeline(seed=0)
    more = mixed_timeline(seed=1)
    tl.ops += more.ops
    tl.transitions += more.transitions
    return Archive(tl.write(folder / "long.mp4", keyint=25), cuts_timeline().write(folder / "short.mp4"))


@dataclass
class Head:
    address: str
    tmp: Path


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    """The head node; this test process is its driver (``ray.init``) for the module."""
    ray = pytest.importorskip("ray")
    mp = pytest.MonkeyPatch()
    for k, v in AUTH_OFF.items():
        mp.setenv(k, v)  # the driver (this process) too
    tmp = Path(tempfile.mkdtemp(prefix="fsray", dir="/tmp"))  # short: Ray's socket paths are limited
    port = _free_port()
    log = tmp / "head.log"
    proc = _start(
        [
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={tmp / 'r'}",
        ],
        log,
    )
    address = f"127.0.0.1:{port}"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"ray head exited:\n{log.read_text()[-2000:]}")
            try:
                ray.init(address=address, log_to_driver=False, logging_level="WARNING")
                return True
            except Exception:
                return False

        _wait(up, "the Ray head", log)
        yield Head(address, tmp)
    finally:
        ray.shutdown()
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
        mp.undo()


@dataclass
class WorkerNode:
    proc: subprocess.Popen[bytes]

    def kill(self) -> None:
        """Kill the node's processes at once (SIGKILL to its process group), as a lost machine."""
        _stop(self.proc, signal.SIGKILL)

    def kill_all(self) -> None:
        """:meth:`kill`, and the node's actors too: Ray starts each worker process in a process group
        of its own (within the node's session), where it may finish its task after its node is gone."""
        own = [pid for pid in _session(self.proc.pid) if pid != os.getpid()]
        self.kill()
        for pid in own:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    @contextlib.contextmanager
    def killed_when(self, ready: Callable[[], bool], poll: float = 0.01) -> Iterator[threading.Event]:
        """Within the block, :meth:`kill_all` the node from a thread as soon as ``ready()`` (at most
        120 s); the event says whether it happened. The thread is stopped and joined on exit."""
        done, killed = threading.Event(), threading.Event()

        def watch() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not done.is_set():
                if ready():
                    self.kill_all()
                    killed.set()
                    return
                time.sleep(poll)

        watcher = threading.Thread(target=watch, name="kill-worker-node")
        watcher.start()
        try:
            yield killed
        finally:
            done.set()
            watcher.join()


def _session(sid: int) -> list[int]:
    """The processes of session ``sid`` (Linux ``/proc``)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # after the name: state, ppid, pgrp, session
                pids.append(int(stat.parent.name))
    return pids


@pytest.fixture
def ray_worker(ray_head: Head) -> Iterator[WorkerNode]:
    """A second node joining the head, with its own CPU and a ``worker2`` resource."""
    import ray

    log = ray_head.tmp / f"worker-{time.monotonic_ns()}.log"
    proc = _start(
        [f"--address={ray_head.address}", "--node-ip-address=127.0.0.1", '--resources={"worker2": 1}'], log
    )
    try:

        def joined() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"ray worker node exited:\n{log.read_text()[-2000:]}")
            alive = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("worker2")]
            return bool(alive) and ray.cluster_resources().get("CPU", 0) >= 2

        _wait(joined, "the Ray worker node", log)
        yield WorkerNode(proc)
    finally:
        _stop(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            n["Alive"] and n["Resources"].get("worker2") for n in ray.nodes()
        ):
            time.sleep(0.5)
