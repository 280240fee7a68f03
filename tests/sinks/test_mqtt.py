"""MQTT sink against a real Mosquitto: QoS 1, ordering across a broker restart, the disk spool,
retained status, the last will, and a dead broker that never blocks the caller."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from framesift.events import SceneChange, SourceStatus
from framesift.log import clear_secrets
from framesift.sinks.base import SinkWorker
from framesift.sinks.mqtt import MqttSink, MqttSinkConfig


def wait_until(pred: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


PASSWORD = "p@ss:w/rd%40#sëcret"
USER = "framesift-sink"


def scene(i: int, source: str = "cam1") -> SceneChange:
    return SceneChange(
        source=source, frame_index=i, pts=i * 512, time_base=Fraction(1, 12800), time=i / 25, score=0.9
    )


def make_sink(broker: Any, tmp_path: Path, **kw: object) -> MqttSink:
    opts: dict[str, object] = {
        "host": broker.host,
        "port": broker.port,
        "client_id": "fs-test",
        "spool_dir": str(tmp_path / "spool"),
        "reconnect_min_s": 1,
        "reconnect_max_s": 1,
        "drain_timeout_s": 5,
    }
    opts.update(kw)
    return MqttSink.from_config(MqttSinkConfig.model_validate(opts))


def worker_for(sink: MqttSink, **kw: object) -> SinkWorker:
    w = SinkWorker(sink, retry_initial_s=0.05, retry_max_s=0.2, **kw)  # type: ignore[arg-type]
    w.start()
    return w


def indices(msgs: list) -> list[int]:
    return [json.loads(m.payload)["frame_index"] for m in msgs]


@pytest.fixture(autouse=True)
def _forget_secrets() -> None:
    clear_secrets()


def test_events_arrive_with_qos1_in_order(
    mosquitto: Any, subscriber: Callable[..., Any], tmp_path: Path
) -> None:
    sub = subscriber(mosquitto)
    sink = make_sink(mosquitto, tmp_path)
    w = worker_for(sink)
    wait_until(lambda: sink.stats["connected"], what="sink connected")
    events = [scene(i) for i in range(30)]
    for ev in events:
        assert w.submit(ev)
    wait_until(lambda: len(sub.on("framesift/cam1/scene_change")) == 30, what="30 events")
    w.stop()
    got = sub.on("framesift/cam1/scene_change")
    assert indices(got) == list(range(30))
    assert all(m.qos == 1 for m in got)
    assert json.loads(got[7].payload) == events[7].to_dict()
    assert sink.stats["published"] == 30 and sink.stats["spool_dropped"] == 0
    assert sink.stats["spool_backlog"] == 0 and w.counts["written"] == 30


def test_broker_restart_delivers_every_event_once_in_order(
    mosquitto: Any,
    subscriber: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mosquitto.stop()
    mosquitto.start(users={USER: PASSWORD})
    sub = subscriber(mosquitto, "framesift/cam1/#")
    sink = make_sink(mosquitto, tmp_path, username=USER, password=PASSWORD)
    w = worker_for(sink)
    wait_until(lambda: sink.stats["connected"], what="sink connected")
    for i in range(10):
        w.submit(scene(i))
    wait_until(lambda: len(sub.all()) == 10, what="first 10 events")
    sub.close()

    mosquitto.stop()  # broker down: events go to the disk spool
    wait_until(lambda: not sink.stats["connected"], what="sink to notice")
    for i in range(10, 50):
        w.submit(scene(i))
    wait_until(lambda: w.counts["written"] == 50, what="all events spooled")
    assert sink.stats["spool_backlog"] == 40 and sink.stats["spooled"] >= 40

    # Same port again; the sink's user is not let in until our subscriber is attached.
    mosquitto.start(users={"someone-else": "x" * 8})
    sub2 = subscriber(mosquitto, "framesift/cam1/#")
    wait_until(lambda: "refused" in (sink.last_error or ""), what="the sink to be refused once")
    mosquitto.set_users({USER: PASSWORD})
    wait_until(lambda: len(sub2.all()) >= 40, timeout=20, what="spooled events after restart")
    w.submit(scene(50))
    wait_until(lambda: len(sub2.all()) >= 41, what="a live event after the backlog")
    w.stop()
    assert indices(sub2.all()) == list(range(10, 51))  # each once, in order, live one last
    assert indices(sub.all()) == list(range(10))
    assert sink.stats["published"] == 51 and sink.stats["spool_backlog"] == 0
    assert sink.stats["connects"] >= 2 and sink.stats["disconnects"] >= 1
    assert PASSWORD not in caplog.text and "p@ss" not in caplog.text


def test_spool_overflow_drops_the_oldest_and_counts(
    mosquitto: Any, subscriber: Callable[..., Any], tmp_path: Path
) -> None:
    mosquitto.stop()
    sink = make_sink(mosquitto, tmp_path, username=USER, password=PASSWORD, spool_max_events=10)
    w = worker_for(sink)
    for i in range(25):
        assert w.submit(scene(i))
    wait_until(lambda: w.counts["written"] == 25, what="25 events spooled")
    assert sink.stats["spool_dropped"] == 15 and sink.stats["spool_backlog"] == 10
    assert sorted(p.name for p in (tmp_path / "spool").iterdir())[0].startswith("spool.sqlite")

    mosquitto.start(users={"someone-else": "x" * 8})
    sub = subscriber(mosquitto, "framesift/cam1/#")
    mosquitto.set_users({USER: PASSWORD})
    wait_until(lambda: len(sub.all()) >= 10, timeout=20, what="the 10 newest events")
    w.stop()
    assert indices(sub.all()) == list(range(15, 25))
    assert sink.stats["published"] == 10


def test_spool_survives_a_restart_of_the_sink(
    mosquitto: Any, subscriber: Callable[..., Any], tmp_path: Path
) -> None:
    mosquitto.stop()
    sink = make_sink(mosquitto, tmp_path, drain_timeout_s=0)
    w = worker_for(sink)
    for i in range(5):
        w.submit(scene(i))
    w.stop()  # broker never came: the events stay on disk
    assert sink.stats["spool_backlog"] == 5

    mosquitto.start()
    sub = subscriber(mosquitto, "framesift/cam1/#")
    sink2 = make_sink(mosquitto, tmp_path)
    w2 = worker_for(sink2)
    w2.submit(scene(5))
    wait_until(lambda: len(sub.all()) >= 6, what="old spool + new event")
    w2.stop()
    assert indices(sub.all()) == list(range(6))


def test_status_is_retained_for_a_late_subscriber(
    mosquitto: Any, subscriber: Callable[..., Any], tmp_path: Path
) -> None:
    sink = make_sink(mosquitto, tmp_path, client_id="fs-status")
    w = worker_for(sink)
    w.submit(SourceStatus(source="cam1", state="connecting"))
    w.submit(SourceStatus(source="cam1", state="up", frames=12))
    w.submit(scene(1))
    wait_until(lambda: sink.stats["published"] == 3, what="3 acks")
    w.stop()

    late = subscriber(mosquitto, "framesift/#")
    wait_until(lambda: len(late.all()) >= 2, what="retained messages")
    status = late.on("framesift/cam1/status")
    assert len(status) == 1 and status[0].retain
    assert json.loads(status[0].payload)["state"] == "up"
    assert late.on("framesift/cam1/scene_change") == []  # events are not retained
    presence = late.on("framesift/_client/fs-status/online")
    assert [m.payload for m in presence] == [b"offline"]  # clean close says so explicitly


CHILD = textwrap.dedent(
    """
    import logging, os, sys, time
    from framesift.sinks.mqtt import MqttSinkConfig
    from framesift.events import SourceStatus
    from framesift.log import setup_logging
    from framesift.sinks.base import SinkWorker
    from framesift.sinks.mqtt import MqttSink

    setup_logging("debug", sys.argv[1])
    pw = os.environ["MQTT_PASSWORD"]
    cfg = MqttSinkConfig(host="127.0.0.1", port=int(sys.argv[2]), client_id="fs-child",
                         username="framesift-sink", password=pw, spool_dir=sys.argv[3])
    log = logging.getLogger("framesift.test")
    log.info("config %r", cfg)
    log.info("camera rtsp://admin:%s@10.0.0.9:554/stream", pw)
    sink = MqttSink.from_config(cfg)
    w = SinkWorker(sink)
    w.start()
    w.submit(SourceStatus(source="cam1", state="failed", detail=f"cannot open rtsp://admin:{pw}@10.0.0.9/x"))
    while not sink.stats["published"]:
        time.sleep(0.02)
    try:
        raise RuntimeError(f"boom rtsp://admin:{pw}@10.0.0.9/x")
    except RuntimeError:
        log.exception("traceback test")
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_last_will_when_the_process_dies_and_no_secret_leaks(
    mosquitto: Any, subscriber: Callable[..., Any], tmp_path: Path, log_format: str
) -> None:
    sub = subscriber(mosquitto, "framesift/#")
    env = dict(os.environ, MQTT_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, log_format, str(mosquitto.port), str(tmp_path / "spool")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"ready", proc.stderr.read().decode() if proc.stderr else ""
        presence = "framesift/_client/fs-child/online"
        wait_until(lambda: [m.payload for m in sub.on(presence)] == [b"online"], what="online")
        proc.send_signal(signal.SIGKILL)  # no clean disconnect: the broker publishes the will
        proc.wait(10)
        wait_until(lambda: [m.payload for m in sub.on(presence)] == [b"online", b"offline"], what="last will")
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
    status = sub.on("framesift/cam1/status")
    assert len(status) == 1
    payload = status[0].payload.decode()
    for secret in (PASSWORD, "p@ss", "w/rd"):
        assert secret not in stderr, stderr
        assert secret not in payload
    assert "rtsp://admin:***@10.0.0.9" in payload
    assert "rtsp://admin:***@10.0.0.9" in stderr and "boom" in stderr and "traceback test" in stderr
    if log_format == "json":
        assert all(json.loads(line) for line in stderr.splitlines() if line.startswith("{"))


def test_a_silent_broker_never_blocks_the_caller(tmp_path: Path) -> None:
    """A TCP peer that accepts and never answers: the sink spools, submit and stop return."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever reads
        port = silent.getsockname()[1]
        cfg = MqttSinkConfig(
            host="127.0.0.1",
            port=port,
            client_id="fs-silent",
            spool_dir=str(tmp_path / "spool"),
            connect_timeout_s=1,
        )
        sink = MqttSink.from_config(cfg)
        w = worker_for(sink, queue_size=4096)
        accepted = sum(w.submit(scene(i)) for i in range(300))
        assert accepted == 300  # nothing dropped: the worker kept draining its queue into the spool
        wait_until(lambda: w.counts["written"] == 300, what="300 events spooled")
        w.stop()
    assert sink.stats["connected"] == 0 and sink.stats["published"] == 0
    assert sink.stats["spool_backlog"] == 300 and sink.stats["spooled"] == 300


def test_connection_killed_under_the_sink_will_then_reconnect(
    mosquitto: Any, subscriber: Callable[..., Any], tmp_path: Path
) -> None:
    sub = subscriber(mosquitto, "framesift/#")
    sink = make_sink(mosquitto, tmp_path, client_id="fs-sock")
    w = worker_for(sink)
    for i in range(5):
        w.submit(scene(i))
    wait_until(lambda: sink.stats["published"] == 5, what="first acks")
    presence = "framesift/_client/fs-sock/online"
    sock = sink._client.socket()  # the live TCP connection to the broker
    sock.shutdown(socket.SHUT_RDWR)  # dies under paho without an MQTT DISCONNECT
    wait_until(lambda: [m.payload for m in sub.on(presence)][:2] == [b"online", b"offline"], what="last will")
    for i in range(5, 10):
        w.submit(scene(i))
    wait_until(lambda: [m.payload for m in sub.on(presence)][-1:] == [b"online"], what="back online")
    wait_until(lambda: len(sub.on("framesift/cam1/scene_change")) >= 10, what="all events")
    w.stop()
    assert indices(sub.on("framesift/cam1/scene_change")) == list(range(10))
    assert [m.payload for m in sub.on(presence)] == [b"online", b"offline", b"online", b"offline"]
    assert sink.stats["connects"] == 2 and sink.stats["disconnects"] == 1


def test_config_from_yaml_with_env_secret_and_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from pydantic import ValidationError

    from framesift.config import substitute_env
    from framesift.errors import SinkError

    monkeypatch.setenv("MQTT_PASSWORD", PASSWORD)
    text = "type: mqtt\nhost: 127.0.0.1\nusername: fs\npassword: ${MQTT_PASSWORD}\nclient_id: a-b.c\n"
    cfg = MqttSinkConfig.model_validate(yaml.safe_load(substitute_env(text)))
    assert cfg.password == PASSWORD and cfg.qos == 1 and cfg.topic_prefix == "framesift"
    assert PASSWORD not in repr(MqttSink.from_config(cfg).name)
    with pytest.raises(ValidationError, match="password given without username"):
        MqttSinkConfig(password="x")
    with pytest.raises(ValidationError, match="client_id"):
        MqttSinkConfig(client_id="has space")
    with pytest.raises(ValidationError, match="topic_prefix"):
        MqttSinkConfig(topic_prefix="a/#")
    bad_tls = MqttSinkConfig(
        port=8883, tls={"ca_file": str(tmp_path / "missing.pem")}, spool_dir=str(tmp_path / "s")
    )
    with pytest.raises(SinkError, match="TLS") as info:
        MqttSink.from_config(bad_tls).open()
    assert not info.value.transient
