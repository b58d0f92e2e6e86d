"""`ioc up` end to end: embedded everything, ready, Ctrl-C leaves nothing behind, data is reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from ioc.net import free_port

pytestmark = pytest.mark.slow


def _start_up(var_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(IOC_VAR_DIR=str(var_dir), IOC_HTTP_PORT=str(port), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "ioc.cli.main", "up"],
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )


def _wait_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout: float = 150) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ioc up exited early:\n{log_path.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                if response.status == 200 and "Operations wall" in log_path.read_text():
                    return json.load(response)
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"not ready within {timeout} s:\n{log_path.read_text()[-4000:]}")


def _interrupt_and_collect(proc: subprocess.Popen, var_dir: Path) -> list[psutil.Process]:
    """SIGINT (what Ctrl-C sends) and return every process that belonged to the system."""
    family = psutil.Process(proc.pid).children(recursive=True)
    pidfile = var_dir / "pg" / "postmaster.pid"
    if pidfile.exists():  # the postmaster detaches from us (pg_ctl setsid), so look it up by its pid file
        family.append(psutil.Process(int(pidfile.read_text().split()[0])))
    assert len(family) >= 4, f"expected broker, postgres and service children, found {family}"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    return family


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    gone, alive = psutil.wait_procs(processes, timeout=10)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _operator_can_log_in(var_dir: Path, port: int) -> None:
    """With no IOC_SEED_PASSWORD_* set, `ioc up` generates the seed users' passwords in var/."""
    passwords_file = var_dir / "seed-passwords.json"
    assert passwords_file.stat().st_mode & 0o077 == 0, "the passwords file must be private (0600)"
    password = json.loads(passwords_file.read_text())["operator1"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=json.dumps({"username": "operator1", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert json.load(response)["access_token"]


def test_up_is_ready_stops_cleanly_on_ctrl_c_and_reuses_its_data(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    port = free_port()
    first_log = tmp_path / "up-1.log"
    proc = _start_up(var_dir, port, first_log)
    try:
        ready = _wait_ready(proc, port, first_log)
        assert ready["status"] == "ready"
        assert f"http://127.0.0.1:{port}/" in first_log.read_text()
        _operator_can_log_in(var_dir, port)
        family = _interrupt_and_collect(proc, var_dir)
        assert _alive(family) == [], "processes left behind after Ctrl-C"
        assert "migrations: 0001_core" in first_log.read_text()

        second_log = tmp_path / "up-2.log"
        proc = _start_up(var_dir, port, second_log)
        _wait_ready(proc, port, second_log)
        assert "migrations: schema is current" in second_log.read_text()
        assert _alive(_interrupt_and_collect(proc, var_dir)) == []
    finally:
        if proc.poll() is None:
            proc.kill()
