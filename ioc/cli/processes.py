"""The long-running commands: ``up`` (everything), ``serve`` (API), ``simulate``; and ``settings``."""

from __future__ import annotations

import typer

from ioc.cli import exit_codes


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(serve)
    app.command()(simulate)
    app.command()(settings)


def up() -> None:
    """Run the whole system: embedded database and broker when none is configured, migrations,
    the sample district, the API, the ingest worker and the feed simulator. Ctrl-C stops it all.

    Examples:
      ioc up                                          # everything embedded, data under ./var
      IOC_DATABASE_URL=postgresql://ioc@db/ioc IOC_MQTT_URL=mqtt://mq:1883 ioc up
    """
    from ioc import logs
    from ioc.settings import get_settings
    from ioc.supervisor import run_up

    settings = get_settings()
    logs.configure(settings.log_level, "up")
    raise typer.Exit(run_up(settings))


def serve(
    host: str = typer.Option(None, help="Listen address (default IOC_HTTP_HOST)."),
    port: int = typer.Option(None, help="Port (default IOC_HTTP_PORT)."),
    workers: int = typer.Option(1, min=1, help="Worker processes behind one port."),
    ws_deflate: bool = typer.Option(False, help="Compress websocket frames per client (off: see docs/performance.md)."),
    ws: str = typer.Option(
        "websockets-sansio",
        help="uvicorn's websocket implementation: websockets-sansio, websockets or wsproto (docs/performance.md).",
    ),
) -> None:
    """Run the HTTP API and pages (needs IOC_DATABASE_URL; `ioc up` sets it).

    Example: IOC_DATABASE_URL=postgresql://ioc@db/ioc IOC_MQTT_URL=mqtt://mq:1883 ioc serve --port 8000
    """
    import uvicorn

    from ioc import logs
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level)
    if not settings.database_url:
        typer.echo("IOC_DATABASE_URL is not set; run `ioc up` for an embedded database.", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    from ioc.auth.service import secret_key_problem

    if problem := secret_key_problem(settings):
        typer.echo(f"IOC_SECRET_KEY: {problem}", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    uvicorn.run(
        "ioc.http.app:create_app",
        factory=True,
        host=host or settings.http_host,
        port=port or settings.http_port,
        workers=workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        # X-Forwarded-For is believed only from the configured proxies (a client could forge it otherwise).
        forwarded_allow_ips=settings.trusted_proxies,
        # No per-client compression: deflating every frame for every wall costs the hub more CPU than
        # the bytes it saves on a LAN (docs/performance.md, "Fan-out").
        ws_per_message_deflate=ws_deflate,
        ws=ws,  # uvicorn refuses an unknown name
        # A stop (systemd, `ioc up`, a deploy) must not wait for long-lived streams to end by
        # themselves: after 5 s they are closed and the clients resume with `since`.
        timeout_graceful_shutdown=5,
    )


def simulate(
    speed: float = typer.Option(None, help="Simulated seconds per real second (default IOC_SIMULATOR_SPEED)."),
    seed: int = typer.Option(None, help="Random seed (default IOC_SIMULATOR_SEED): same seed, same day."),
    duration: float = typer.Option(0, help="Stop after this many real seconds (0: run until stopped)."),
) -> None:
    """Publish a realistic day of the district's feeds on MQTT (needs IOC_MQTT_URL; `ioc up` sets it).

    Example: IOC_MQTT_URL=mqtt://127.0.0.1:1883 ioc simulate --speed 120 --duration 30
    """
    from ioc import logs
    from ioc.settings import get_settings

    settings = get_settings()
    logs.configure(settings.log_level)
    if not settings.mqtt_url:
        typer.echo("IOC_MQTT_URL is not set; run `ioc up` for an embedded broker.", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    from feeds.simulator.runner import run_simulator

    raise typer.Exit(
        run_simulator(
            settings,
            speed=speed or settings.simulator_speed,
            seed=settings.simulator_seed if seed is None else seed,
            duration_s=duration or None,
        )
    )


def settings(markdown: bool = typer.Option(False, "--markdown", help="Print the README table.")) -> None:
    """List every setting: environment variable, default, meaning."""
    from ioc.settings_doc import settings_table

    typer.echo(settings_table(markdown=markdown))
