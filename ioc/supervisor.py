"""``ioc up``: run the whole system as one command.

Starts what is not configured (embedded PostgreSQL, embedded MQTT broker), migrates, loads the
district configuration, then runs each service as a child process (API, ingest worker, simulator,
and whatever later parts register) and restarts a child that dies. Ctrl-C or SIGTERM stops the
children first (they finish their batches), then the broker, then the database, so nothing is left
behind and a second ``ioc up`` finds its data where it was.

Children run in their own sessions: the terminal's Ctrl-C reaches only the supervisor, which then
stops them in order instead of every process racing to exit at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ioc.settings import Settings

log = logging.getLogger("ioc.up")

STOP_GRACE_S = 15.0
READY_TIMEOUT_S = 120.0


@dataclass
class ServiceSpec:
    """A child process of ``ioc up``: a name for the logs and the ``ioc`` sub-command to run."""

    name: str
    args: list[str]
    enabled: Callable[[Settings], bool] = lambda settings: True


def default_services() -> list[ServiceSpec]:
    """The processes of a complete system. Later parts (hub, detectors) add theirs here."""
    return [
        ServiceSpec("api", ["serve"]),
        ServiceSpec("ingest", ["ingest"]),
        # Radio commands, acks, playback proof and CAP -> radio (docs/radio.md).
        ServiceSpec("radio", ["radio", "serve"]),
        # Warning deliveries: Web Push, e-mail, webhooks and the ledger (docs/warnings.md).
        ServiceSpec("warnings", ["warnings", "serve"]),
        # The simulator's cameras play the sample video; 2 fps keeps a small machine responsive.
        ServiceSpec("detector", ["detect", "--local-only", "--max-fps", "2"]),
        ServiceSpec("simulator", ["simulate"]),
    ]


@dataclass
class Child:
    spec: ServiceSpec
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0


@dataclass
class Supervisor:
    settings: Settings
    services: list[ServiceSpec] = field(default_factory=default_services)
    _stop: threading.Event = field(default_factory=threading.Event)
    _children: list[Child] = field(default_factory=list)
    _passwords_file: Path | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def request_stop(self, signum: int | None = None, frame: object = None) -> None:
        if not self._stop.is_set():
            log.info("stopping (signal %s)…", signal.Signals(signum).name if signum else "-")
        self._stop.set()

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        self.settings.var_dir.mkdir(parents=True, exist_ok=True)
        pg = broker = None
        try:
            database_url, pg = self._database()
            if self._stop.is_set():
                return 0
            mqtt_url, broker = self._broker()
            self._prepare(database_url)
            env = self._child_env(database_url, mqtt_url)
            if broker is not None:
                # The embedded rumqttd panics when a shared subscriber disconnects holding unacked
                # messages (docs/broker.md): its single ingest worker subscribes exclusively.
                env["IOC_MQTT_SHARE_GROUP"] = ""
                env["IOC_RADIO_SHARE_GROUP"] = ""  # the same for the single radio service
            self._children = [Child(spec) for spec in self.services if spec.enabled(self.settings)]
            for child in self._children:
                self._start(child, env)
            if self._wait_ready(env):
                self._announce(database_url, mqtt_url, embedded_db=pg is not None, embedded_broker=broker is not None)
            while not self._stop.wait(0.5):
                self._watch(env)
            return 0
        finally:
            self._stop_children()
            if broker is not None:
                broker.stop()
            if pg is not None:
                pg.stop()
            log.info("stopped; data kept under %s", self.settings.var_dir)

    # -- dependencies --------------------------------------------------------------------------
    def _database(self):
        if self.settings.database_url:
            return self.settings.database_url, None
        from ioc.embedded.postgres import EmbeddedPostgres
        from ioc.runtime import EMBEDDED_DATABASE

        log.info(
            "IOC_DATABASE_URL is unset: starting the embedded PostgreSQL (data in %s)", self.settings.var_dir / "pg"
        )
        server = EmbeddedPostgres(self.settings.var_dir / "pg").start()
        return server.ensure_database(EMBEDDED_DATABASE), server

    def _broker(self):
        if self.settings.mqtt_url:
            return self.settings.mqtt_url, None
        from ioc.embedded.broker import EmbeddedBroker

        log.info("IOC_MQTT_URL is unset: starting the embedded MQTT broker")
        broker = EmbeddedBroker(self.settings.var_dir / "broker")
        # The broker child inherits an ignored SIGINT, so Ctrl-C reaches only us; we stop it in order.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            broker.start()
        finally:
            signal.signal(signal.SIGINT, previous)
        return broker.url, broker

    def _prepare(self, database_url: str) -> None:
        from ioc.clock import SystemClock
        from ioc.storage import timeseries
        from ioc.storage.db import connect
        from ioc.storage.migrate import migrate

        applied = migrate(database_url)
        log.info("migrations: %s", ", ".join(applied) if applied else "schema is current")
        with connect(database_url) as conn:
            log.info("time-series: %s", timeseries.maintain(conn, SystemClock(), self.settings).summary())
        self._load_district(database_url)

    def _load_district(self, database_url: str) -> None:
        from ioc.district.bootstrap import load_district_into

        self._seed_passwords()
        log.info(load_district_into(database_url, self.settings))

    def _seed_passwords(self) -> None:
        """Give every seed user whose password variable is unset a generated one, kept in var/.

        ``ioc up`` is the one-command system: without this, nobody could log in to the wall it
        opens. The passwords are random, kept in a 0600 file beside the generated secret key, and
        reach the seeding through the environment exactly as an operator's own variables would; a
        variable that is set always wins, and a user who already has a password keeps it.
        """
        import json

        from ioc.district.loader import load_district

        try:
            users = load_district(self.settings.district_config).users
        except Exception:  # noqa: BLE001 - the district load right after reports the real problem
            return
        path = self.settings.var_dir / "seed-passwords.json"
        known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        generated = False
        for user in users:
            if not user.password_env or os.environ.get(user.password_env):
                continue
            if user.username not in known:
                known[user.username] = secrets.token_urlsafe(12)
                generated = True
            os.environ[user.password_env] = known[user.username]
        if generated:
            path.write_text(json.dumps(known, ensure_ascii=False, indent=2) + "\n")
            path.chmod(0o600)
        if known:
            self._passwords_file = path
            log.warning("seed users without IOC_SEED_PASSWORD_* use generated passwords: see %s", path)

    def _secret_key(self) -> str:
        if self.settings.secret_key:
            return self.settings.secret_key.get_secret_value()
        path = self.settings.var_dir / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
            log.warning("IOC_SECRET_KEY is unset: using a generated development key in %s", path)
        return path.read_text().strip()

    def _child_env(self, database_url: str, mqtt_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            IOC_DATABASE_URL=database_url,
            IOC_MQTT_URL=mqtt_url,
            IOC_SECRET_KEY=self._secret_key(),
            IOC_VAR_DIR=str(self.settings.var_dir),
            PYTHONUNBUFFERED="1",
        )
        return env

    # -- children ------------------------------------------------------------------------------
    def _start(self, child: Child, env: dict[str, str]) -> None:
        argv = [sys.executable, "-m", "ioc.cli.main", *child.spec.args]
        child_env = dict(env, IOC_PROCESS_NAME=child.spec.name)
        child.process = subprocess.Popen(argv, env=child_env, start_new_session=True)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d): ioc %s", child.spec.name, child.process.pid, " ".join(child.spec.args))

    def _watch(self, env: dict[str, str]) -> None:
        """Restart a child that died, with exponential backoff (1 s doubling to 60 s)."""
        now = time.monotonic()
        for child in self._children:
            proc = child.process
            if proc is not None and proc.poll() is not None:
                if now - child.started_at > 60:
                    child.restarts = 0
                delay = min(60.0, 2.0**child.restarts)
                log.error("%s exited with code %s; restarting in %.0f s", child.spec.name, proc.returncode, delay)
                child.process = None
                child.restarts += 1
                child.next_start = now + delay
            elif proc is None and now >= child.next_start:
                self._start(child, env)

    def _stop_children(self) -> None:
        """SIGTERM every child (newest first), wait for them, SIGKILL what is left."""
        running = [c.process for c in reversed(self._children) if c.process and c.process.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop in %.0f s; killing it", proc.pid, STOP_GRACE_S)
                proc.kill()
                proc.wait()

    def _wait_ready(self, env: dict[str, str]) -> bool:
        """Poll /readyz, restarting any child that dies meanwhile (an API that failed to bind, say).

        Watching only after readiness would leave a crashed API down for the whole wait.
        """
        url = f"http://{self.settings.http_host}:{self.settings.http_port}/readyz"
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local URL
                    if response.status == 200:
                        return True
            except Exception as exc:  # noqa: BLE001 - keep polling until ready or timeout
                last = str(exc)
            self._watch(env)
            self._stop.wait(0.5)
        if not self._stop.is_set():
            log.error("the API did not become ready within %.0f s (%s)", READY_TIMEOUT_S, last)
        return False

    def _announce(self, database_url: str, mqtt_url: str, *, embedded_db: bool, embedded_broker: bool) -> None:
        base = f"http://{self.settings.http_host}:{self.settings.http_port}"
        lines = [
            "",
            "IOC is running — Trung tâm điều hành thông minh đang chạy",
            f"  Operations wall : {base}/",
            f"  API docs        : {base}/docs",
            f"  Commune console : {base}/console/",
            f"  Citizen reports : {base}/phan-anh/",
            f"  Readiness       : {base}/readyz",
            f"  Metrics         : {base}/metrics",
            f"  MQTT            : {mqtt_url}{' (embedded)' if embedded_broker else ''}",
            f"  Database        : {_redact(database_url)}{' (embedded)' if embedded_db else ''}",
            *(
                [f"  Logins          : {self._passwords_file} (generated passwords of the seed users)"]
                if self._passwords_file
                else []
            ),
            *(
                ["  Simulated day   : at real speed (1x) a quiet hour shows little; IOC_SIMULATOR_SPEED=60 make up"
                 " plays an hour a minute"]
                if self.settings.simulator_speed == 1.0
                else [f"  Simulated day   : {self.settings.simulator_speed:g}x real speed (IOC_SIMULATOR_SPEED)"]
            ),
            "Press Ctrl-C to stop.",
            "",
        ]
        print("\n".join(lines), flush=True)


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def run_up(settings: Settings) -> int:
    return Supervisor(settings).run()
