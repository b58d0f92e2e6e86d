"""The real app served over HTTP for tests that need real connections (uvicorn in a thread)."""

from __future__ import annotations

from typing import Any


class ServedApp:
    """The app under uvicorn on a free loopback port, in a thread: requests go over real HTTP."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        from ioc.net import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class CuttableLink:
    """A TCP proxy in front of PostgreSQL whose link can be cut and restored, as a network or a
    database outage looks to the API: ``cut()`` drops every open connection and refuses new ones.
    Forwards to the server's TCP address or its Unix socket (the embedded test database)."""

    def __init__(self, database_url: str) -> None:
        import socket
        import threading

        import psycopg

        from ioc.net import free_port

        params = psycopg.conninfo.conninfo_to_dict(database_url)
        host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)
        self._target = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/") else (socket.AF_INET, (host, port))
        )
        self.port = free_port()
        from urllib.parse import quote

        auth = quote(str(params.get("user") or "postgres")) + (
            ":" + quote(str(params["password"])) if params.get("password") else ""
        )
        self.url = f"postgresql://{auth}@127.0.0.1:{self.port}/{params.get('dbname')}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self.is_cut = False
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.is_cut:
                client.close()
                continue
            upstream = socket.socket(self._target[0], socket.SOCK_STREAM)
            try:
                upstream.connect(self._target[1])
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: Any, sink: Any) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        import contextlib
        import socket

        self.is_cut = True
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()

    def restore(self) -> None:
        self.is_cut = False

    def close(self) -> None:
        self._stop = True
        self.cut()
        self._listener.close()
