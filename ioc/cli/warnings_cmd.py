"""``ioc warnings``: the dispatcher of warning deliveries (docs/warnings.md)."""

from __future__ import annotations

import signal

import typer

from ioc.cli import exit_codes

app = typer.Typer(help="Public warnings: `serve` sends queued deliveries (Web Push, e-mail, webhooks) and keeps "
                  "the ledger (docs/warnings.md).")  # fmt: skip


@app.command()
def serve(tick_ms: float = typer.Option(500.0, min=10, help="How often due deliveries are sent.")) -> None:
    """Send queued warning deliveries, retry webhooks with back-off, raise an alert on a failed
    delivery, and follow the radio's proof of broadcast into the ledger. Several may run.

    Example: IOC_DATABASE_URL=postgresql://ioc@db/ioc IOC_SMTP_URL=smtp://mail:25 ioc warnings serve
    """
    from ioc import logs
    from ioc.settings import get_settings
    from ioc.warnings.config import load_warnings_config
    from ioc.warnings.dispatch import DispatchContext, Dispatcher

    settings = get_settings()
    logs.configure(settings.log_level, "warnings")
    if not settings.database_url:
        typer.echo("IOC_DATABASE_URL must be set (`ioc up` sets it).", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    ctx = DispatchContext(load_warnings_config(settings.warnings_config), settings.var_dir, settings.smtp_url,
                          settings.smtp_from, settings.vapid_subject)  # fmt: skip
    dispatcher = Dispatcher(settings.database_url, ctx, tick_s=tick_ms / 1000.0)
    signal.signal(signal.SIGTERM, lambda *_: dispatcher.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: dispatcher.stopping.set())
    raise typer.Exit(dispatcher.run())
