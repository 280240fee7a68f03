"""A small RTSP server for tests, on GStreamer's gst-rtsp-server (run with the system /usr/bin/python3).

    /usr/bin/python3 tests/rtsp_server_gst.py --port 8554 --mount cam=barcode:160x120@10 --mount t=test

Mount specs:
  ``barcode:WxH@FPS``  H.264 of generated frames whose top strip carries the frame counter as the
                       16-bit barcode of ``framesift.samples.read_barcode`` (counts from 0 per media).
  ``test:WxH@FPS``     ``videotestsrc`` (ball pattern) with a buffer-count overlay, H.264.
Media are shared: every client of a mount sees the same stream. Prints ``READY <port>`` once listening.
Needs only python3-gi, gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-{base,good,ugly} (no numpy).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

BITS = 16
STRIP = 16


def parse_spec(spec: str) -> tuple[str, int, int, int]:
    kind, _, geo = spec.partition(":")
    width, height, fps = 160, 120, 10
    if geo:
        size, _, rate = geo.partition("@")
        w, _, h = size.partition("x")
        width, height = int(w), int(h)
        if rate:
            fps = int(rate)
    return kind, width, height, fps


def barcode_frame(index: int, width: int, height: int, body: bytes) -> bytes:
    bw = width // BITS
    row = bytearray()
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        row += (b"\xff" if on else b"\x00") * (3 * bw)
    row += b"\x80" * (3 * (width - bw * BITS))
    return bytes(row) * STRIP + body


class BarcodeFactory(GstRtspServer.RTSPMediaFactory):
    """Frames with the counter barcode, pushed by a GLib timer at ``fps`` into an appsrc."""

    def __init__(self, width: int, height: int, fps: int, encoder: str) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.body = b"\x80" * (3 * width * (height - STRIP))
        caps = f"video/x-raw,format=RGB,width={width},height={height},framerate={fps}/1"
        self.set_launch(
            f"( appsrc name=src is-live=true format=time do-timestamp=true caps={caps} "
            f"! videoconvert ! {encoder} )"
        )
        self.set_shared(True)
        self.connect("media-configure", self._configure)

    def _configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        state = {"n": 0, "timer": 0}

        def push() -> bool:
            data = barcode_frame(state["n"], self.width, self.height, self.body)
            buf = Gst.Buffer.new_wrapped(data)
            buf.duration = Gst.SECOND // self.fps
            state["n"] += 1
            ret = appsrc.emit("push-buffer", buf)
            if ret not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
                state["timer"] = 0
                return False
            return True

        def unprepared(*_args: object) -> None:
            if state["timer"]:
                GLib.source_remove(state["timer"])
                state["timer"] = 0

        state["timer"] = GLib.timeout_add(max(1, 1000 // self.fps), push)
        media.connect("unprepared", unprepared)


def h264(fps: int) -> str:
    return (
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} bframes=0 "
        "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1"
    )


def make_factory(spec: str) -> GstRtspServer.RTSPMediaFactory:
    kind, width, height, fps = parse_spec(spec)
    if kind == "barcode":
        return BarcodeFactory(width, height, fps, h264(fps))
    if kind == "test":
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( videotestsrc is-live=true pattern=ball "
            f"! video/x-raw,width={width},height={height},framerate={fps}/1 "
            f"! timeoverlay time-mode=running-time ! videoconvert ! {h264(fps)} )"
        )
        factory.set_shared(True)
        return factory
    raise SystemExit(f"unknown mount kind {kind!r} (barcode, test)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mount", action="append", default=[], help="NAME=SPEC (repeatable)")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for item in args.mount or ["stream=barcode"]:
        name, _, spec = item.partition("=")
        mounts.add_factory("/" + name.strip("/"), make_factory(spec or "barcode"))
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    parent = os.getppid()

    def orphaned() -> bool:  # the test process died without stopping us: exit too
        if os.getppid() != parent:
            loop.quit()
            return False
        return True

    GLib.timeout_add(500, orphaned)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
