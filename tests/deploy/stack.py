"""The production shape on this machine, from Debian's packages and the files of deploy/.

A PostgreSQL 15 primary with a synchronous streaming standby (initdb into temporary directories as
the postgres user, ``pg_basebackup -R``, deploy/postgresql/ioc.conf included), Mosquitto confined the
way deploy/mosquitto/README.md sets it up (``ioc broker certs`` + ``ioc broker generate --no-plaintext``
for the sample district config/district.yaml: TLS only, one account per device and per service),
HAProxy terminating TLS in front of two ``ioc serve`` (deploy/haproxy/ioc.cfg), two ``ioc ingest`` on
the shared subscription and the radio service, each process logged in with its own account. Every
file of deploy/ is used as it is, with only its paths, ports and sizes rewritten.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ioc.broker.certs import make_certs
from ioc.broker.config import Listeners, generate
from ioc.broker.passwords import password_for
from ioc.district.loader import load_district
from ioc.net import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
AS_ROOT = os.geteuid() == 0
# The deployment runs the sample district; its devices have broker accounts (ioc broker generate).
DISTRICT_FILE = ROOT / "config" / "district.yaml"
UNIT = "tra-my"
CAMERA = "cam-tra-my-centre-01"
SENSOR = "sensor-tra-my-bridge-water"
RADIO = "radio-tra-my-1"  # two loudspeaker clusters of the same unit: each may read only its own commands
OTHER_RADIO = "radio-tra-my-2"
SUBMIT_BURST = 3


def missing_parts() -> list[str]:
    """What this machine lacks for the deploy tests (they skip naming it)."""
    needed = {
        "haproxy": shutil.which("haproxy") or "/usr/sbin/haproxy",
        "mosquitto": "/usr/sbin/mosquitto",
        "initdb": str(PG_BIN / "initdb"),
        "pg_basebackup": str(PG_BIN / "pg_basebackup"),
    }
    return [name for name, path in needed.items() if not path or not Path(path).exists()]


def as_postgres(cmd: list[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd`` as the postgres user when we are root (PostgreSQL refuses to run as root)."""
    if AS_ROOT:
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        cmd = ["runuser", "-u", "postgres", "--", "env", *extra, *cmd]
        env = None
    else:
        env = dict(os.environ, **(env or {}))
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, **kwargs)


def _give_to_postgres(path: Path) -> None:
    if AS_ROOT:
        shutil.chown(path, "postgres", "postgres")


@dataclass
class Cluster:
    """One PostgreSQL server in a temporary directory."""

    data: Path
    port: int
    socket_dir: Path

    def start(self) -> None:
        options = f"-c port={self.port} -c unix_socket_directories={self.socket_dir}"
        as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.data.parent / f"{self.data.name}.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--"] * AS_ROOT
            + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
            capture_output=True,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def _postgres_conf(tmp: Path, archive: Path) -> Path:
    """deploy/postgresql/ioc.conf with this machine's paths and a test machine's sizes."""
    text = (DEPLOY / "postgresql" / "ioc.conf").read_text()
    timescale = (PG_BIN.parent / "lib" / "timescaledb.so").exists()
    replacements = {
        "listen_addresses = '*'": "listen_addresses = '127.0.0.1'",
        "shared_buffers = 8GB": "shared_buffers = 128MB",
        "effective_cache_size = 24GB": "effective_cache_size = 1GB",
        "maintenance_work_mem = 1GB": "maintenance_work_mem = 64MB",
        "wal_keep_size = 2GB": "wal_keep_size = 256MB",
        "/var/backups/ioc": str(archive.parent),
    }
    if not timescale:
        replacements["shared_preload_libraries = 'timescaledb,pg_stat_statements'"] = (
            "shared_preload_libraries = 'pg_stat_statements'"
        )
        replacements["timescaledb.telemetry_level = off"] = ""
    for old, new in replacements.items():
        assert old in text, f"deploy/postgresql/ioc.conf no longer has {old!r}"
        text = text.replace(old, new)
    conf = tmp / "ioc-postgresql.conf"
    conf.write_text(text)
    return conf


@dataclass
class Replicated:
    """A primary and a synchronous streaming standby; ``url`` names both (read-write wins)."""

    primary: Cluster
    standby: Cluster
    backup_dir: Path

    @property
    def url(self) -> str:
        return (
            f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/ioc"
            "?target_session_attrs=read-write&connect_timeout=3"
        )

    def promote_standby(self) -> None:
        """The failover command of deploy/postgresql/ioc-promote, run on the standby."""
        env = {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.standby.port),
            "PGUSER": "postgres",
            "PG_BIN": str(PG_BIN),
            "PGDATA": str(self.standby.data),
        }
        as_postgres([str(DEPLOY / "postgresql" / "ioc-promote")], env=env)
        self.primary, self.standby = self.standby, self.primary

    def backup_env(self) -> dict[str, str]:
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.primary.port),
            "PGUSER": "postgres",
            "IOC_BACKUP_DIR": str(self.backup_dir),
            "PG_BIN": str(PG_BIN),
        }


def start_replicated(tmp: Path) -> Replicated:
    base = tmp / "pg"
    base.mkdir()
    backup_dir = base / "backups"
    (backup_dir / "wal").mkdir(parents=True)
    for path in (base, backup_dir, backup_dir / "wal"):
        _give_to_postgres(path)
    conf = _postgres_conf(base, backup_dir / "wal")
    primary = Cluster(base / "primary", free_port(), base)
    as_postgres([str(PG_BIN / "initdb"), "-D", str(primary.data), "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
    with (primary.data / "postgresql.conf").open("a") as f:
        f.write(f"\ninclude '{conf}'\n")
    primary.start()
    standby = Cluster(base / "standby", free_port(), base)
    as_postgres(
        [
            str(PG_BIN / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(standby.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        ]
    )
    standby.start()
    # The standby is connected and synchronous before the first commit that needs it.
    # (synchronous_standby_names = 'ANY 1 (*)': its sync_state is "quorum")
    deadline = time.monotonic() + 60
    query = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')"
    while _psql(primary, query) != "1":
        if time.monotonic() > deadline:
            states = _psql(primary, "SELECT string_agg(state || '/' || sync_state, ',') FROM pg_stat_replication")
            log = (standby.data.parent / f"{standby.data.name}.log").read_text()[-2000:]
            raise RuntimeError(f"the standby did not become synchronous ({states!r}): {log}")
        time.sleep(0.2)
    _psql(primary, "CREATE DATABASE ioc")
    return Replicated(primary, standby, backup_dir)


def _psql(cluster: Cluster, sql: str, database: str = "postgres") -> str:
    out = subprocess.run(
        [
            str(PG_BIN / "psql"),
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            str(cluster.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@dataclass(frozen=True)
class BrokerFiles:
    """What ``ioc broker certs`` and ``ioc broker generate`` wrote (deploy/mosquitto/README.md)."""

    directory: Path
    tls: Path  # ca.crt, server.crt, server.key
    secrets: Path  # <account>.password
    conf: Path  # mosquitto.conf (TLS only), next to ioc.passwd and ioc.acl
    acl: Path
    #: server certificate + key in one file, for HAProxy
    haproxy_pem: Path

    @property
    def ca_pem(self) -> Path:
        return self.tls / "ca.crt"

    def password(self, account: str) -> str:
        return password_for(account, self.secrets, {})


def make_broker_files(directory: Path, port: int, data: Path) -> BrokerFiles:
    """The broker's CA, certificate, password file, ACL and configuration, through ioc/broker's API."""
    tls = directory / "tls"
    made = make_certs(tls, ["127.0.0.1", "localhost"])
    haproxy_pem = directory / "haproxy.pem"
    haproxy_pem.touch(0o600)
    haproxy_pem.write_bytes(made["server"].read_bytes() + made["server"].with_suffix(".key").read_bytes())
    listeners = Listeners(bind="127.0.0.1", plaintext_port=None, tls_port=port, tls_dir=tls)
    generated = generate(load_district(DISTRICT_FILE), directory / "out", directory / "secrets", listeners=listeners,
                         data_dir=data, log_file=data / "mosquitto.log", environ={})  # fmt: skip
    return BrokerFiles(directory, tls, directory / "secrets", generated.files["conf"], generated.files["acl"],
                       haproxy_pem)  # fmt: skip


@dataclass
class Broker:
    files: BrokerFiles
    port: int
    process: subprocess.Popen
    data: Path

    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def stop(self) -> None:
        _terminate(self.process)


def start_broker(tmp: Path) -> Broker:
    data = tmp / "mosquitto"
    data.mkdir()
    port = free_port()
    files = make_broker_files(tmp / "broker-files", port, data)
    text = files.conf.read_text()
    assert "listener 1883" not in text and "protocol mqtt" in text, "the generated broker has a plain listener"
    if AS_ROOT:
        text += "\nuser root\n"  # Mosquitto would drop to "mosquitto", who cannot read our temporary files
    files.conf.write_text(text)
    process = subprocess.Popen(
        ["/usr/sbin/mosquitto", "-c", str(files.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_port(port, process, "mosquitto", data / "mosquitto.log")
    return Broker(files, port, process, data)


def _wait_port(port: int, process: subprocess.Popen, name: str, log: Path | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:] if log and log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on {port}")


def _terminate(process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Proxy:
    port: int
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        _terminate(self.process)


def start_proxy(tmp: Path, pem: Path, api_ports: list[int]) -> Proxy:
    state = tmp / "haproxy"
    state.mkdir()
    port = free_port()
    env = dict(
        os.environ,
        IOC_HTTPS_BIND=f"127.0.0.1:{port}",
        IOC_HTTP_BIND=f"127.0.0.1:{free_port()}",
        IOC_TLS_PEM=str(pem),
        IOC_HAPROXY_STATE=str(state),
        **{f"IOC_API_{i + 1}": f"127.0.0.1:{p}" for i, p in enumerate(api_ports)},
    )
    config = DEPLOY / "haproxy" / "ioc.cfg"
    subprocess.run(["haproxy", "-c", "-f", str(config)], env=env, check=True, capture_output=True)
    log = state / "haproxy.log"
    with log.open("w") as out:
        process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], env=env, stdout=out, stderr=subprocess.STDOUT)
    _wait_port(port, process, "haproxy", log)
    return Proxy(port, process, log)


@dataclass
class Services:
    """The ioc processes, each started the way its systemd unit starts it."""

    env: dict[str, str]
    tmp: Path
    api_ports: list[int]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        env = dict(self.env, IOC_VAR_DIR=str(self.tmp / "var" / name), **extra)
        with log.open("a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ioc.cli.main", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs[name] = proc
        return proc

    def start_api(self, index: int) -> None:
        port = self.api_ports[index]
        proc = self._spawn(
            f"api{index + 1}",
            ["serve", "--host", "127.0.0.1", "--port", str(port)],
            {"IOC_MQTT_USERNAME": "ioc-api", "IOC_MQTT_PASSWORD": self.env["_API_PW"]},
        )
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, self.tmp / f"api{index + 1}.log")

    def start_ingest(self, index: int) -> None:
        ready = self.tmp / f"ingest{index}.ready"
        ready.unlink(missing_ok=True)
        proc = self._spawn(
            f"ingest{index}",
            ["ingest", "--worker-id", str(index), "--batch-size", "200", "--ready-file", str(ready)],
            {"IOC_MQTT_USERNAME": "ioc-ingest", "IOC_MQTT_PASSWORD": self.env["_INGEST_PW"]},
        )
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"ingest {index} did not subscribe: {(self.tmp / f'ingest{index}.log').read_text()[-3000:]}"
                )
            time.sleep(0.1)

    def start_radio(self) -> None:
        self._spawn(
            "radio",
            ["radio", "serve", "--worker-id", "1"],
            {"IOC_MQTT_USERNAME": "ioc-radio", "IOC_MQTT_PASSWORD": self.env["_RADIO_PW"]},
        )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.kill()
        proc.wait()

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            _terminate(proc)


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our local server
                if response.status == 200:
                    return
        except Exception as exc:  # noqa: BLE001
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready: {last}: {log.read_text()[-3000:]}")


def tls_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def service_env(db_url: str, broker: Broker) -> dict[str, str]:
    """The environment of deploy/ioc.env.example; each unit adds its own broker login (a drop-in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOC_")}
    env.update(
        IOC_DATABASE_URL=db_url,
        IOC_MQTT_URL=broker.url(),
        SSL_CERT_FILE=str(broker.files.ca_pem),
        IOC_SECRET_KEY=secrets.token_urlsafe(48),
        IOC_LOG_LEVEL="WARNING",
        IOC_TRUSTED_PROXIES=json.dumps(["127.0.0.1"]),
        IOC_RATE_LIMIT_STORE="postgres",
        IOC_PUBLIC_SUBMIT_BURST=str(SUBMIT_BURST),
        IOC_PUBLIC_SUBMIT_PER_MIN="0.1",
        IOC_DISTRICT_CONFIG=str(DISTRICT_FILE),
        # One district secret for the radio service and any loudspeaker fleet: commands are signed with it.
        IOC_RADIO_COMMAND_KEY=secrets.token_hex(32),
        _API_PW=broker.files.password("ioc-api"),
        _INGEST_PW=broker.files.password("ioc-ingest"),
        _RADIO_PW=broker.files.password("ioc-radio"),
    )
    return env
