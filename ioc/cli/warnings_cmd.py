"""``ioc warnings``: the dispatcher of warning deliveries (docs/warnings.md)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from ioc.cli import exit_codes

WarningsFile = Annotated[Path | None, typer.Argument(help="The warnings file (default: IOC_WARNINGS_CONFIG).")]

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


@app.command()
def check(file: WarningsFile = None) -> None:
    """Check the warnings file against the district: schema, categories, channels, the communes named for
    e-mail, webhook secrets present in the environment. Exit codes: 0 valid, 1 invalid, 3 unreadable.

    Example: ioc warnings check config/warnings.yaml
    """
    from pydantic import ValidationError

    from ioc.district.loader import load_district
    from ioc.settings import get_settings
    from ioc.warnings.config import load_warnings_config

    settings = get_settings()
    path = file or settings.warnings_config
    if path is None or not Path(path).is_file():
        typer.echo(f"cannot read {path}: no such file", err=True)
        raise typer.Exit(exit_codes.UNAVAILABLE)
    try:
        config = load_warnings_config(path)
    except (ValidationError, ValueError) as exc:
        typer.echo(f"INVALID: {path}: {exc}")
        raise typer.Exit(exit_codes.FAILED) from None
    problems = []
    units = {u.id for u in load_district(settings.district_config).units}
    problems += [f"email.units.{u}: no such unit in the district" for u in config.email.units if u not in units]
    for i, hook in enumerate(config.webhooks):
        problems += [f"webhooks[{i}].categories: unknown category {c}" for c in hook.categories
                     if c not in config.categories]  # fmt: skip
        if hook.secret() is None:
            typer.echo(f"warning: webhooks[{i}] ({hook.id}): ${hook.secret_env} is not set; its deliveries will fail")
    if problems:
        for problem in problems:
            typer.echo(problem)
        typer.echo(f"INVALID: {len(problems)} error(s) in {path}")
        raise typer.Exit(exit_codes.FAILED)
    radio = ", ".join(sorted(config.radio_categories())) or "none"
    typer.echo(f"OK: {len(config.categories)} categories (loudspeakers: {radio}), {len(config.webhooks)} webhook(s)")
