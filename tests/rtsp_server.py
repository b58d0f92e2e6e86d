"""A real RTSP server for the camera tests: GStreamer's gst-rtsp-server from Debian, serving H.264.

Run with Debian's /usr/bin/python3 (python3-gi and gir1.2-gst-rtsp-server-1.0 are system packages,
not in the project's virtual environment):

    /usr/bin/python3 tests/rtsp_server.py --port 8554 cam-a=320x240 cam-b=640x480

Each mount serves a live test picture (a moving ball, so motion and frame rate are real) encoded by
x264 at 10 fps with a key frame every second. It prints ``ready`` once listening and runs until killed.
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("mounts", nargs="+", help="name=WIDTHxHEIGHT")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.mounts:
        name, size = spec.split("=")
        width, height = (int(v) for v in size.split("x"))
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
            f"framerate={args.fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory.set_shared(True)
        mounts.add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        sys.exit("could not listen")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
