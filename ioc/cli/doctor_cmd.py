"""``ioc doctor``: check a deployment the way an operator would, from the host of one ioc process.

Each check talks to the real thing (a TLS handshake, an anonymous MQTT CONNECT that must be refused,
PostgreSQL's own views of replication, archiving and connected processes) and says OK, WARN or FAIL
with the reason. Exit 0 when nothing FAILs, 1 otherwise: fit for a systemd timer or a monitoring
probe. The checks:

* **tls**: the broker answers TLS with a certificate this host trusts, valid for 14 more days; the
  public URL (``--url``) likewise, and its ``/readyz`` answers 200 through the proxy.
* **acl**: the broker refuses an anonymous client and a wrong password; its ACL file (``--broker-acl``,
  read where the broker's files are) is the one ``ioc broker generate`` writes, and no account but
  ``ioc-radio`` may publish a loudspeaker command (a shared read-write-everything account, like the
  old ``ioc-service``, FAILs); this process's own login is not such an account.
* **secrets**: IOC_SECRET_KEY usable, broker credentials set, rate limits shared (several replicas),
  trusted proxies named (not ``*``).
* **database**: reachable, read-write, migrations current.
* **replication**: a streaming standby, synchronous when the configuration asks for one.
* **backups**: the newest base backup under ``--backup-dir`` younger than ``--max-backup-age-h``,
  the WAL archiver without a failure since its last success, the last restore drill matched.
* **jobs**: ingest workers, API hubs and the radio service connected to the database; TimescaleDB
  background jobs (when present) not failing; dead letters of the last hour counted.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

CERT_MIN_DAYS = 14


@dataclass
class Check:
    check: str
    status: str  # OK, WARN, FAIL
    detail: str


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def doctor(
    url: str = typer.Option(None, envvar="IOC_PUBLIC_URL", help="The public https:// address (the proxy)."),
    backup_dir: str = typer.Option("/var/backups/ioc", envvar="IOC_BACKUP_DIR", help="Where backups are."),
    max_backup_age_h: float = typer.Option(26.0, help="Newest base backup older than this: FAIL."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of lines."),
    broker_acl: str = typer.Option(
        "/etc/mosquitto/ioc/ioc.acl", envvar="IOC_BROKER_ACL", help="The broker's ACL file (ioc broker generate)."
    ),
) -> None:
    """Check a deployment: TLS, broker ACLs, secrets, database and standby, backups, running jobs.

    Example: IOC_PUBLIC_URL=https://ioc.example.vn ioc doctor    (reads /etc/ioc/ioc.env's settings)
    """
    from ioc.settings import get_settings

    settings = get_settings()
    checks: list[Check] = []
    for step in (_tls, _acl, _secrets, _database, _replication, _backups, _jobs):
        try:
            checks.extend(step(settings, url=url, backup_dir=Path(backup_dir), max_backup_age_h=max_backup_age_h,
                               broker_acl=Path(broker_acl)))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed check, with its reason
            checks.append(Check(step.__name__.strip("_"), "FAIL", f"{exc.__class__.__name__}: {exc}"))
    ok = not any(c.status == "FAIL" for c in checks)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, ensure_ascii=False))
    else:
        for c in checks:
            typer.echo(f"{c.status:<4}  {c.check:<11}  {c.detail}")
    raise typer.Exit(0 if ok else 1)


# -- TLS -----------------------------------------------------------------------------------------
def _certificate_days(host: str, port: int) -> float:
    """Days the peer's certificate stays valid; raises when the handshake or verification fails."""
    context = ssl.create_default_context()  # trusts the system store, or SSL_CERT_FILE
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        cert = tls.getpeercert()
    expires = ssl.cert_time_to_seconds(cert["notAfter"])
    return (expires - time.time()) / 86400


def _tls(settings: Any, *, url: str | None, **_: Any) -> list[Check]:
    out: list[Check] = []
    if settings.mqtt_url:
        parts = urlsplit(settings.mqtt_url)
        host, port = parts.hostname or "", parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        if parts.scheme != "mqtts":
            local = host in ("127.0.0.1", "localhost", "::1")
            out.append(
                Check(
                    "tls", "WARN" if local else "FAIL", f"broker {host}:{port} without TLS (IOC_MQTT_URL=mqtts://...)"
                )
            )
        else:
            days = _certificate_days(host, port)
            status = "OK" if days >= CERT_MIN_DAYS else "FAIL"
            out.append(Check("tls", status, f"broker {host}:{port}: certificate verified, {days:.0f} days left"))
    else:
        out.append(Check("tls", "FAIL", "IOC_MQTT_URL is not set"))
    if not url:
        out.append(Check("tls", "WARN", "no public URL given (--url or IOC_PUBLIC_URL): the proxy was not checked"))
        return out
    parts = urlsplit(url)
    if parts.scheme != "https":
        out.append(Check("tls", "FAIL", f"{url} is not https"))
        return out
    days = _certificate_days(parts.hostname or "", parts.port or 443)
    import httpx

    with httpx.Client(verify=ssl.create_default_context(), timeout=10) as http:
        ready = http.get(url.rstrip("/") + "/readyz")
    status = "OK" if days >= CERT_MIN_DAYS and ready.status_code == 200 else "FAIL"
    out.append(Check("tls", status, f"{url}: certificate verified, {days:.0f} days left; /readyz {ready.status_code}"))
    return out


# -- broker ACLs ---------------------------------------------------------------------------------
def _mqtt_refuses(settings: Any, username: str | None, password: str | None) -> tuple[bool, str]:
    """Try to connect; (refused?, what happened)."""

    from ioc.mqtt import BrokerAddress, make_client

    address = BrokerAddress.from_url(settings.mqtt_url)
    address = BrokerAddress(address.host, address.port, username, password, address.tls)
    client = make_client(address, f"ioc-doctor-{int(time.time())}")
    result: list[Any] = []
    client.on_connect = lambda c, u, f, rc, p: result.append(rc)
    client.on_disconnect = lambda c, u, f, rc, p: result.append(rc)
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError as exc:
        return True, f"connection closed: {exc}"
    client.loop_start()
    deadline = time.monotonic() + 5
    while not result and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    with_code = result[0] if result else None
    client.disconnect()
    if with_code is None:
        return True, "no answer"
    return bool(with_code.is_failure), str(with_code)


GENERATED_ACL = "# Generated by `ioc broker generate`"


def acl_file_checks(text: str, root: str = "ioc/v1", login: str | None = None) -> list[Check]:
    """What a Mosquitto ACL file lets each account do that it should not.

    Only ``ioc-radio`` may publish a loudspeaker command (docs/broker.md, "Confined devices"): an
    account whose rules cover any cluster's ``cmd`` topic (``readwrite ioc/v1/#``, ``write #`` ...)
    is the shared-account hole where one stolen login makes every loudspeaker play. ``pattern``
    lines apply to every account, so a wide one counts against all of them."""
    from paho.mqtt.client import topic_matches_sub

    probe = f"{root.strip('/')}/doctor-unit/radio/doctor-probe/cmd"
    wide: dict[str, str] = {}
    user = "(every account: pattern)"
    users = 0
    for raw in text.splitlines():
        words = raw.strip().split(None, 2)  # a topic may hold spaces: the rest of the line
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user" and len(words) > 1:
            user, users = words[1], users + 1
            continue
        if words[0] in ("topic", "pattern"):
            access, topic = (words[1], words[2]) if len(words) > 2 else ("readwrite", words[-1])
            who = user if words[0] == "topic" else "(every account: pattern)"
            if access in ("write", "readwrite") and who != "ioc-radio" and topic_matches_sub(topic, probe):
                wide.setdefault(who, f"{access} {topic}")
    out = []
    if text.startswith(GENERATED_ACL):
        out.append(Check("acl", "OK", f"ACL file generated by `ioc broker generate`: {users} accounts"))
    else:
        out.append(Check("acl", "WARN", "ACL file not generated by `ioc broker generate` (docs/broker.md)"))
    for who, rule in wide.items():
        out.append(Check("acl", "FAIL", f"account {who} may publish any loudspeaker's command ({rule}): "
                                        "one account per service with `ioc broker generate`"))  # fmt: skip
    if login and login in wide:
        out.append(Check("acl", "FAIL", f"this process logs in as {login}, a shared read-write account"))
    return out


def _acl(settings: Any, *, broker_acl: Path | None = None, **_: Any) -> list[Check]:
    if not settings.mqtt_url:
        return [Check("acl", "FAIL", "IOC_MQTT_URL is not set")]
    out = []
    if broker_acl is not None:
        try:
            text = broker_acl.read_text()
        except OSError as exc:
            out.append(Check("acl", "WARN", f"broker ACL {broker_acl} not read here ({exc.strerror}): run on the "
                                            "broker's host or name it with --broker-acl"))  # fmt: skip
        else:
            out += acl_file_checks(text, settings.mqtt_topic_root, settings.mqtt_username)
    if settings.mqtt_username == "ioc-service":
        out.append(Check("acl", "WARN", "IOC_MQTT_USERNAME=ioc-service: the old shared account; log in with this "
                                        "process's own account (ioc-api, ioc-ingest, ioc-radio...)"))  # fmt: skip
    refused, how = _mqtt_refuses(settings, None, None)
    out.append(
        Check("acl", "OK" if refused else "FAIL", f"anonymous client {'refused' if refused else 'ACCEPTED'} ({how})")
    )
    refused, how = _mqtt_refuses(settings, "ioc-doctor-probe", "wrong-password")
    out.append(
        Check("acl", "OK" if refused else "FAIL", f"wrong password {'refused' if refused else 'ACCEPTED'} ({how})")
    )
    return out


# -- secrets and settings -----------------------------------------------------------------------------
def _secrets(settings: Any, **_: Any) -> list[Check]:
    from ioc.auth.service import secret_key_problem

    out = []
    problem = secret_key_problem(settings)
    out.append(Check("secrets", "FAIL" if problem else "OK", f"IOC_SECRET_KEY: {problem or 'set and usable'}"))
    has_mqtt = bool(settings.mqtt_password or (settings.mqtt_url and urlsplit(settings.mqtt_url).password))
    out.append(
        Check(
            "secrets",
            "OK" if has_mqtt else "FAIL",
            "broker password " + ("set" if has_mqtt else "missing (IOC_MQTT_PASSWORD)"),
        )
    )
    shared = settings.rate_limit_store == "postgres"
    out.append(
        Check(
            "secrets",
            "OK" if shared else "WARN",
            f"rate limits: {settings.rate_limit_store}"
            + ("" if shared else " (several API replicas each allow the full rate: IOC_RATE_LIMIT_STORE=postgres)"),
        )
    )
    trusts_all = "*" in settings.trusted_proxies
    out.append(
        Check(
            "secrets",
            "FAIL" if trusts_all else "OK",
            f"trusted proxies: {', '.join(settings.trusted_proxies)}"
            + (" (anyone can forge X-Forwarded-For)" if trusts_all else ""),
        )
    )
    return out


# -- database, replication, backups, jobs -----------------------------------------------------------------
def _query(settings: Any, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(
        settings.database_url, autocommit=True, connect_timeout=5, application_name="ioc-doctor"
    ) as conn:
        return conn.execute(sql, params).fetchall()


def _database(settings: Any, **_: Any) -> list[Check]:
    if not settings.database_url:
        return [Check("database", "FAIL", "IOC_DATABASE_URL is not set")]
    from ioc.storage.migrate import status

    (row,) = _query(settings, "SELECT pg_is_in_recovery(), inet_server_addr()::text, inet_server_port(), version()")
    out = [
        Check(
            "database",
            "FAIL" if row[0] else "OK",
            f"{'a STANDBY' if row[0] else 'the primary'} at {row[1]}:{row[2]} ({row[3].split(' on ')[0]})",
        )
    ]
    pending = status(settings.database_url).pending
    out.append(
        Check(
            "database",
            "FAIL" if pending else "OK",
            f"migrations pending: {', '.join(pending)}" if pending else "migrations current",
        )
    )
    hosts = urlsplit(settings.database_url).netloc.rpartition("@")[2]
    if "," not in hosts:
        out.append(
            Check(
                "database",
                "WARN",
                "IOC_DATABASE_URL names one host: after a failover the processes "
                "cannot find the promoted standby (list both, target_session_attrs=read-write)",
            )
        )
    return out


def _replication(settings: Any, **_: Any) -> list[Check]:
    rows = _query(settings, "SELECT application_name, state, sync_state, replay_lag::text FROM pg_stat_replication")
    (wanted,) = _query(settings, "SELECT current_setting('synchronous_standby_names')")[0]
    streaming = [r for r in rows if r[1] == "streaming"]
    if not streaming:
        return [
            Check(
                "replication",
                "FAIL" if wanted else "WARN",
                "no streaming standby" + (": synchronous commits are waiting" if wanted else ""),
            )
        ]
    sync = [r for r in streaming if r[2] in ("sync", "quorum")]
    status = "OK" if (sync or not wanted) else "WARN"
    detail = ", ".join(f"{r[0] or '?'} {r[2]} (replay lag {r[3] or '0'})" for r in streaming)
    return [Check("replication", status, f"standbys: {detail}")]


def _backups(settings: Any, *, backup_dir: Path, max_backup_age_h: float, **_: Any) -> list[Check]:
    out = []
    bases = sorted(p for p in (backup_dir / "base").glob("2*") if p.is_dir()) if (backup_dir / "base").is_dir() else []
    if not bases:
        out.append(Check("backups", "FAIL", f"no base backup under {backup_dir / 'base'}"))
    else:
        age_h = (time.time() - bases[-1].stat().st_mtime) / 3600
        out.append(
            Check(
                "backups",
                "OK" if age_h <= max_backup_age_h else "FAIL",
                f"newest base backup {bases[-1].name}, {age_h:.1f} h old; {len(bases)} kept",
            )
        )
    (row,) = _query(
        settings,
        "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, "
        "last_archived_time, failed_count, last_failed_time FROM pg_stat_archiver",
    )
    mode, archived, last_wal, last_at, failed, failed_at = row
    if mode == "off":
        out.append(Check("backups", "FAIL", "archive_mode is off: no point-in-time recovery"))
    elif failed_at and (last_at is None or failed_at > last_at):
        out.append(
            Check("backups", "FAIL", f"WAL archiving failing since {failed_at:%Y-%m-%d %H:%M} UTC ({failed} failures)")
        )
    else:
        when = f"{(datetime.now(UTC) - last_at).total_seconds() / 60:.0f} min ago" if last_at else "nothing yet"
        out.append(Check("backups", "OK", f"WAL archiving: {archived} segments, last {last_wal or '-'} {when}"))
    drill_file = backup_dir / "last-drill.json"
    if not drill_file.exists():
        out.append(Check("backups", "WARN", "no restore drill yet (deploy/backup/ioc-restore-drill)"))
    else:
        drill = json.loads(drill_file.read_text())
        age_d = (time.time() - drill_file.stat().st_mtime) / 86400
        good = not drill.get("missing") and "error" not in drill
        status = "FAIL" if not good else ("OK" if age_d <= 8 else "WARN")
        out.append(
            Check(
                "backups",
                status,
                f"restore drill {age_d:.1f} days ago: {drill.get('restored_rows')} of "
                f"{drill.get('live_rows')} rows, same={drill.get('same')}",
            )
        )
    return out


def _jobs(settings: Any, **_: Any) -> list[Check]:
    # This database only: processes of another database on the same server are not ours.
    names = [
        r[0]
        for r in _query(settings, "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()")
    ]
    out = []
    for name, what in (
        ("ioc-ingest", "ingest workers"),
        ("ioc-hub", "API hubs listening"),
        ("ioc-radio", "radio service connections"),
    ):
        count = sum(1 for n in names if n and n.startswith(name))
        out.append(Check("jobs", "OK" if count else "FAIL", f"{what}: {count}"))
    (has_timescale,) = _query(settings, "SELECT count(*) > 0 FROM pg_extension WHERE extname = 'timescaledb'")[0]
    if has_timescale:
        failing = _query(
            settings,
            "SELECT job_id, last_run_status FROM timescaledb_information.job_stats WHERE last_run_status = 'Failed'",
        )
        out.append(Check("jobs", "FAIL" if failing else "OK", f"TimescaleDB jobs failing: {len(failing)}"))
    (dead,) = _query(settings, "SELECT count(*) FROM dead_letters WHERE received_at > now() - interval '1 hour'")[0]
    out.append(Check("jobs", "OK", f"dead letters in the last hour: {dead}"))
    return out
