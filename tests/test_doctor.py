"""`ioc doctor` against a deployment that is NOT production-ready: it must say what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_doctor_fails_an_open_broker_a_missing_secret_and_missing_backups(
    database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(IOC_DATABASE_URL=database_url, IOC_MQTT_URL=mqtt_url, IOC_BACKUP_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "ioc.cli.main", "doctor", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    report = json.loads(out.stdout)
    assert out.returncode == 1 and not report["ok"]
    failed = {(c["check"], c["detail"].split(":")[0].split(" ")[0]) for c in report["checks"] if c["status"] == "FAIL"}
    assert ("secrets", "IOC_SECRET_KEY") in failed
    assert ("acl", "anonymous") in failed  # the test broker lets anyone in
    assert ("backups", "no") in failed
    assert ("jobs", "ingest") in failed  # nothing is running
    warned = {c["check"] for c in report["checks"] if c["status"] == "WARN"}
    assert "database" in warned  # one database host: no failover
