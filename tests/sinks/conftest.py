"""Fixtures for the delivery sinks: a real Mosquitto broker on 127.0.0.1 and a paho subscriber."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Mosquitto:
    """A mosquitto process on 127.0.0.1:``port`` with persistence off.

    Anonymous clients are always allowed. With ``users`` a password file is used, so a client that
    presents a username must match it: tests use this to hold the sink off (its user missing) while
    a subscriber attaches, then :meth:`set_users` + SIGHUP lets it in.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.passwd_path = workdir / "passwd"

    def _write_users(self, users: dict[str, str]) -> None:
        tmp = self.passwd_path.with_suffix(".new")
        tmp.write_text("")
        for user, pw in users.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", str(tmp), user, pw], check=True, capture_output=True)
        os.chmod(tmp, 0o600)
        tmp.replace(self.passwd_path)

    def start(self, users: dict[str, str] | None = None) -> None:
        assert self.proc is None, "already running"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false"]
        if os.geteuid() == 0:
            lines.append("user root")  # else mosquitto drops to 'mosquitto' and cannot read tmp files
        if users is not None:
            self._write_users(users)
            lines.append(f"password_file {self.passwd_path}")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf), "-v"], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                out = self.log_path.read_text(errors="replace")[-2000:]
                self.proc = None
                raise RuntimeError(f"mosquitto exited at start:\n{out}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not listen on {self.port}") from None
                time.sleep(0.05)

    def set_users(self, users: dict[str, str]) -> None:
        """Replace the password file and make the running broker reload it (SIGHUP)."""
        assert self.proc is not None
        self._write_users(users)
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)  # mosquitto reloads on its next loop pass

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class Subscriber:
    """A paho client subscribed to ``topic`` with QoS 1, recording every message it receives."""

    def __init__(self, broker: Mosquitto, topic: str = "framesift/#", client_id: str = "") -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError("subscriber did not get SUBACK")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def all(self) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber() -> Iterator[Callable[..., Subscriber]]:
    """Factory: ``subscriber(broker, topic="framesift/#")``; all are closed at teardown."""
    made: list[Subscriber] = []

    def _make(broker: Mosquitto, topic: str = "framesift/#") -> Subscriber:
        sub = Subscriber(broker, topic)
        made.append(sub)
        return sub

    yield _make
    for sub in made:
        sub.close()
