"""``ioc ingest``: the MQTT ingestion worker; and ``bench_ingest`` for ``ioc bench ingest``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ioc.cli import exit_codes


def register(app: typer.Typer) -> None:
    app.command()(ingest)


def ingest(
    worker_id: str = typer.Option(
        None,
        help="Stable id of this worker (its MQTT client id is ioc-ingest-<host>-<id>): keep it across "
        "restarts so that the broker hands back the worker's session. Default 0.",
    ),
    client_id: str = typer.Option(None, help="Full MQTT client id (overrides --worker-id)."),
    batch_size: int = typer.Option(1000, min=1, help="Messages per transaction at most."),
    batch_wait_ms: float = typer.Option(50.0, min=0, help="Commit at most this long after a batch's first message."),
    buffer: int = typer.Option(
        5000, min=1, help="Messages received and not yet committed at most (the MQTT Receive Maximum)."
    ),
    session_expiry: int = typer.Option(86_400, min=0, help="Seconds the broker keeps the session while we are away."),
    presence_check_s: float = typer.Option(5.0, min=0.05, help="How often silent devices are looked for."),
    metrics_port: int = typer.Option(0, min=0, help="Serve Prometheus metrics on this port (0: off)."),
    ready_file: str = typer.Option(None, hidden=True, help="Write our pid here once subscribed (tests, bench)."),
    commit_trace: str = typer.Option(None, hidden=True, help="Bench: append commit/ts times of telemetry here."),
) -> None:
    """Run an ingest worker: MQTT (shared subscription $share/IOC_MQTT_SHARE_GROUP/IOC_MQTT_TOPIC_ROOT/#)
    into PostgreSQL, acknowledging each message after its commit. Start several with different
    --worker-id to split the load. SIGTERM finishes the current batch, acknowledges it and exits.

    Example: IOC_DATABASE_URL=postgresql://ioc@db/ioc IOC_MQTT_URL=mqtt://mq:1883 ioc ingest --worker-id 1
    """
    import socket

    from ingest.worker import config_from_settings, run_worker
    from ioc import logs
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level, "ingest")
    if not settings.database_url or not settings.mqtt_url:
        typer.echo("IOC_DATABASE_URL and IOC_MQTT_URL must be set (`ioc up` sets both).", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    config = config_from_settings(
        settings,
        client_id=client_id or f"ioc-ingest-{socket.gethostname()}-{worker_id or '0'}",
        batch_size=batch_size,
        batch_wait_s=batch_wait_ms / 1000.0,
        buffer_size=buffer,
        session_expiry_s=session_expiry,
        presence_check_s=presence_check_s,
        ready_file=Path(ready_file) if ready_file else None,
        commit_trace=Path(commit_trace) if commit_trace else None,
    )
    raise typer.Exit(run_worker(config))


def bench_ingest(
    messages: int = typer.Option(20_000, min=1, help="QoS 1 telemetry messages to publish (~300 bytes each)."),
    workers: int = typer.Option(1, min=1, help="Ingest worker processes sharing the subscription."),
    as_json: bool = typer.Option(False, "--json", help="Print only the JSON line."),
    batch_size: int = typer.Option(1000, min=1, help="Worker batch size."),
    rate: float = typer.Option(0.0, min=0, help="Publisher rate in msg/s (0: as fast as it can)."),
    mosquitto: bool = typer.Option(
        True, help="Start a private Mosquitto when IOC_MQTT_URL is unset (else the embedded rumqttd)."
    ),
    out: str = typer.Option(None, help="Also append the JSON line to this file."),
) -> None:
    """End-to-end ingest throughput and publish-to-commit latency, with two baselines measured in the
    same run: (a) a bare paho subscriber counting the same messages, (b) binary COPY of the same rows.

    Example: ioc bench ingest --messages 20000 --workers 2 --json
    """
    from ingest.bench import run_bench
    from ioc import logs
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure("WARNING" if as_json else settings.log_level, "bench")
    try:
        from ioc.cli.bench import progress

        with progress(as_json, f"ingest bench: {messages} messages, {workers} worker(s)..."):
            result = run_bench(
                settings, messages=messages, workers=workers, batch_size=batch_size, rate=rate,
                prefer_mosquitto=mosquitto,
            )  # fmt: skip
    except ConnectionError as exc:
        typer.echo(f"bench: {exc}", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    line = json.dumps(result, sort_keys=False)
    if out is not None:
        with Path(out).open("a") as fh:
            fh.write(line + "\n")
    if not as_json:
        for key, value in result.items():
            typer.echo(f"{key:>40}: {value}", err=True)
    typer.echo(line)
