"""The real app served over HTTP for tests that need real connections (uvicorn in a thread)."""

from __future__ import annotations

from typing import Any


class ServedApp:
    """The app under uvicorn on a free loopback port, in a thread: requests go over real HTTP."""

    def __init__(self, app: Any) -> None:
        import threading

        import uvicorn

        from ioc.embedded.broker import free_port

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
