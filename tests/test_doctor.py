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


# The ACL of the old shared `ioc-service` account (removed from config/mosquitto/ in #22): one login
# that could publish every loudspeaker's command.
SHARED_ACL = """# Mosquitto ACL for ioc
user ioc-ingest
topic read ioc/v1/#
topic write ioc/v1/+/+/+/presence

user ioc-service
topic readwrite ioc/v1/#

pattern write ioc/v1/+/+/%u/telemetry
pattern read ioc/v1/+/+/%u/cmd
"""


def test_doctor_recognises_the_generated_acl_and_fails_a_shared_readwrite_account(tmp_path: Path) -> None:
    from ioc.broker.config import generate
    from ioc.cli.doctor_cmd import acl_file_checks
    from ioc.district.loader import load_district

    made = generate(load_district(ROOT / "config" / "district.yaml"), tmp_path / "out", tmp_path / "secrets",
                    environ={})  # fmt: skip
    checks = acl_file_checks(made.files["acl"].read_text(), "ioc/v1", "ioc-api")
    assert [c.status for c in checks] == ["OK"], checks
    assert f"{len(made.accounts)} accounts" in checks[0].detail

    checks = acl_file_checks(SHARED_ACL, "ioc/v1", "ioc-service")
    failed = [c.detail for c in checks if c.status == "FAIL"]
    assert checks[0].status == "WARN"  # not generated
    assert any(d.startswith("account ioc-service may publish") for d in failed), failed
    assert any("logs in as ioc-service" in d for d in failed), failed
    assert not any("ioc-ingest" in d for d in failed)
    # A wide pattern applies to every account; a bare `topic #` means readwrite.
    for text, who in (("pattern write ioc/v1/+/+/+/cmd\n", "(every account"), ("user x\ntopic #\n", "account x")):
        assert any(c.status == "FAIL" and who in c.detail for c in acl_file_checks(text)), text
