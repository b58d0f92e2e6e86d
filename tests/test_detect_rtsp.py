"""Real cameras: the detector worker against a real RTSP server (GStreamer's gst-rtsp-server from
Debian, H.264 from x264), through the broker and ingest to alerts in PostgreSQL.

One worker watches three cameras. The server is killed, stays away 10 s and comes back with one
camera at another resolution: every camera is reported offline (a device-offline alert each) and
then online (alerts resolved), the "camera down" alarm is raised while they are lost, the same
worker process carries on, and the changed camera's zones follow its new size.

Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and the x264 plugin (`make test` installs them
when root); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import yaml

from ingest.testing import count, seed_devices, wait_for
from ingest.worker import Worker, WorkerConfig
from ioc.net import free_port

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
UNIT = "tra-my"
CAMERAS = ("cam-rtsp-a", "cam-rtsp-b", "cam-rtsp-c")


def _rtsp_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} missing"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
         "assert Gst.ElementFactory.find('x264enc'), 'x264enc'; assert Gst.ElementFactory.find('rtph264pay')"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if probe.returncode:
        return ("GStreamer RTSP server not installed (apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi "
                f"gstreamer1.0-plugins-ugly gstreamer1.0-plugins-good): {probe.stderr.strip()[-200:]}")  # fmt: skip
    return None


pytestmark = pytest.mark.skipif(bool(reason := _rtsp_missing()), reason=reason or "")


@contextmanager
def rtsp_server(port: int, mounts: dict[str, str]) -> Iterator[subprocess.Popen]:
    """The server as its own process, on Debian's python3 (the venv has no GObject bindings)."""
    proc = subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), "--port", str(port),
                             *(f"{k}={v}" for k, v in mounts.items())],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def district_with_rtsp_cameras(tmp: Path, port: int) -> Path:
    """The sample district with its cameras replaced by three RTSP ones (zones drawn on 320x240)."""
    doc = yaml.safe_load((ROOT / "config" / "district.yaml").read_text())
    doc["geometry_file"] = str(ROOT / "config" / doc["geometry_file"])
    doc["cameras"] = [
        {"id": cid, "name": f"Camera thử {cid[-1]}", "unit": UNIT, "site": "school",
         "position": {"lat": 15.3349, "lon": 108.338}, "stream_url": f"rtsp://127.0.0.1:{port}/{cid}",
         "frame": {"width": 320, "height": 240}, "fps": 5,
         "zones": [{"name": "san", "label": "Sân", "kind": "school_yard",
                    "polygon": [[20, 20], [300, 20], [300, 220], [20, 220]]}],
         "rules": [{"id": "yard", "kind": "intrusion", "zone": "san", "severity": "severe"}]}
        for cid in CAMERAS
    ]  # fmt: skip
    path = tmp / "district.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def debug(db: str) -> str:
    with psycopg.connect(db) as conn:
        return repr([conn.execute("SELECT kind, status, title FROM alerts").fetchall(),
                     conn.execute("SELECT topic, reason, detail FROM dead_letters").fetchall(),
                     conn.execute("SELECT camera_id, rule FROM camera_events").fetchall()])


def worker_log(path: Path) -> str:
    """The worker's log without FFmpeg's reconnection noise."""
    lines = [line for line in path.read_text().splitlines() if "tcp @" not in line and "[ WARN:" not in line]
    return "\n".join(lines)[-3000:]


@contextmanager
def ingest(db: str, broker: str, root: str) -> Iterator[Worker]:
    config = WorkerConfig(
        database_url=db, mqtt_url=broker, topic_root=root, share_group=None, session_expiry_s=0,
        client_id=f"test-rtsp-{secrets.token_hex(4)}", batch_wait_s=0.02, presence_check_s=0.2,
        presence_flush_s=0.0, alert_rules=ROOT / "config" / "alert-rules.yaml",
    )  # fmt: skip
    worker = Worker(config)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: worker.subscribed, 10)
        yield worker
    finally:
        worker.stop()
        thread.join(15)


def test_three_rtsp_cameras_drop_for_10_s_and_return_without_a_worker_restart(
    database_factory: Callable[..., str], mqtt_url: str, tmp_path: Path
) -> None:
    db = database_factory(migrated=True)
    seed_devices(db, UNIT, [(c, "camera") for c in CAMERAS])
    root = f"t{secrets.token_hex(3)}/v1"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env |= {"IOC_DISTRICT_CONFIG": str(district_with_rtsp_cameras(tmp_path, port)), "IOC_MQTT_URL": mqtt_url,
            "IOC_MQTT_TOPIC_ROOT": root, "IOC_VAR_DIR": str(tmp_path / "var"), "IOC_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1"}  # fmt: skip
    if os.environ.get("IOC_MODEL_DIR"):
        env["IOC_MODEL_DIR"] = os.environ["IOC_MODEL_DIR"]
    else:
        env["IOC_MODEL_DIR"] = str(ROOT / "var" / "models")  # the model the other detector tests cached
    log_path = tmp_path / "detect.log"

    def alerts(kind: str, status: str | None = None) -> int:
        sql = "SELECT count(*) FROM alerts WHERE kind = %s AND unit_id = %s"
        args: tuple = (kind, UNIT)
        if status == "open":
            sql += " AND status NOT IN ('resolved', 'closed', 'dismissed')"
        elif status:
            sql += " AND status = %s"
            args += (status,)
        return count(db, sql, args)

    def presence(state: str) -> int:
        return count(db, "SELECT count(*) FROM device_presence WHERE device_id = ANY(%s) AND state = %s",
                     (list(CAMERAS), state))  # fmt: skip

    def telemetry_width(camera_id: str) -> float | None:
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT (payload->'metrics'->>'width_px')::float FROM telemetry WHERE device_id = %s "
                               "ORDER BY time DESC LIMIT 1", (camera_id,)).fetchone()  # fmt: skip
        return None if row is None else row[0]

    with ingest(db, mqtt_url, root), log_path.open("w") as log_file:
        with rtsp_server(port, dict.fromkeys(CAMERAS, "320x240")) as server:
            worker = subprocess.Popen(
                [sys.executable, "-m", "ioc.cli.main", "detect", "--health-every", "1", "--down-alarm-min", "0.1",
                 "--max-fps", "2"],
                cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                assert wait_for(lambda: presence("online") == 3, 60), worker_log(log_path)
                assert wait_for(lambda: all(telemetry_width(c) == 320.0 for c in CAMERAS), 30)
                server.send_signal(signal.SIGKILL)  # the camera network goes away at once
                dropped = time.monotonic()
                assert wait_for(lambda: presence("offline") == 3, 20), worker_log(log_path)
                assert wait_for(lambda: alerts("device.offline", "open") == 3, 10)
                assert wait_for(lambda: alerts("camera.down", "open") == 3, 15), (worker_log(log_path), debug(db))
                time.sleep(max(0.0, 10.0 - (time.monotonic() - dropped)))
            except BaseException:
                worker.terminate()
                worker.wait(10)
                raise
        pid = worker.pid
        try:
            with rtsp_server(port, {"cam-rtsp-a": "640x480", "cam-rtsp-b": "320x240", "cam-rtsp-c": "320x240"}):
                assert wait_for(lambda: presence("online") == 3, 60), worker_log(log_path)
                assert wait_for(lambda: alerts("device.offline", "open") == 0, 10)
                assert wait_for(lambda: alerts("camera.down", "open") == 0, 10)
                assert wait_for(lambda: telemetry_width("cam-rtsp-a") == 640.0, 30)
                assert worker.poll() is None and worker.pid == pid  # the same worker process carried on
                text = log_path.read_text()
                assert "cam-rtsp-a: stream is 640x480, zones drawn on 320x240 are rescaled" in text, text[-2000:]
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
    assert alerts("device.offline", "resolved") == 3 and alerts("camera.down", "resolved") == 3
