"""A real RTSP server on 127.0.0.1 for tests: GStreamer's gst-rtsp-server in a subprocess.

Usage (plain)::

    with RtspServer({"cam": "barcode:160x120@10"}) as srv:
        url = srv.url("cam")          # rtsp://127.0.0.1:<free port>/cam
        srv.kill()                    # SIGKILL: the stream dies as in a crash
        srv.restart()                 # same port, same mounts
        srv.pause(); srv.resume()     # SIGSTOP / SIGCONT: a frozen server

or as a fixture: ``rtsp_server`` (function-scoped, one ``stream`` mount) from this module's
:func:`rtsp_server_fixture`; import it into a conftest or a test module. Mount specs
(see ``tests/rtsp_server_gst.py``): ``barcode:WxH@FPS`` (H.264 frames carrying their counter as the
framesift barcode) and ``test:WxH@FPS`` (videotestsrc). The server runs with
``/usr/bin/python3`` (python3-gi + gir1.2-gst-rtsp-server-1.0); tests are skipped when that is missing.
Every start waits until the port accepts connections; ``stop()`` (also on ``__exit__``) always reaps
the process, so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("rtsp_server_gst.py")
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def gst_rtsp_available() -> bool:
    """True when the system python has gi with GstRtspServer."""
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    code = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", code], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RtspServer:
    """One gst-rtsp-server process serving ``mounts`` ({name: spec}) on ``port`` (free one by default)."""

    def __init__(
        self, mounts: Mapping[str, str] | None = None, *, port: int | None = None, start_timeout: float = 20.0
    ) -> None:
        self.mounts = dict(mounts or {"stream": "barcode:160x120@10"})
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="rtsp-server-", suffix=".log", delete=False)  # noqa: SIM115
        self._log.close()
        self.paused = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> RtspServer:
        """Start the server and wait until its port accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        cmd = [SYSTEM_PYTHON, str(SCRIPT), "--host", HOST, "--port", str(self.port)]
        for name, spec in self.mounts.items():
            cmd += ["--mount", f"{name}={spec}"]
        with open(self._log.name, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
        self.paused = False
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"RTSP server exited with {self.proc.returncode}: {self.log_text()[-2000:]}"
                )
            if self.accepts():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"RTSP server did not listen on {HOST}:{self.port} in {self.start_timeout} s")

    def accepts(self) -> bool:
        """True when a TCP connection to the port succeeds."""
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def url(self, mount: str | None = None) -> str:
        name = mount or next(iter(self.mounts))
        return f"rtsp://{HOST}:{self.port}/{name.strip('/')}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the server (a crash: no RTSP teardown) and reap it."""
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open but sends nothing (a frozen camera)."""
        if self.running and self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self) -> RtspServer:
        """Kill (if running) and start again on the same port with the same mounts."""
        self.kill()
        deadline = time.monotonic() + 10
        while self.accepts() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 3 s; always reaps the process."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if self.paused:
                proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.paused = False

    def close(self) -> None:
        """Stop and remove the log file."""
        self.stop()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def log_text(self) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_gst_rtsp() -> None:
    """Skip the calling test when the system GStreamer RTSP server is not installed."""
    if not gst_rtsp_available():
        pytest.skip("needs /usr/bin/python3 with python3-gi and gir1.2-gst-rtsp-server-1.0")


@contextlib.contextmanager
def rtsp_servers(*mounts: Mapping[str, str]) -> Iterator[list[RtspServer]]:
    """Start several servers (one per mounts mapping); all are stopped on exit."""
    servers: list[RtspServer] = []
    try:
        for m in mounts:
            servers.append(RtspServer(m).start())
        yield servers
    finally:
        for s in servers:
            s.close()


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    """A started server with one ``stream`` mount (barcode frames, 160x120, 10 fps); stopped after."""
    require_gst_rtsp()
    with RtspServer() as srv:
        yield srv


rtsp_server_fixture = rtsp_server
