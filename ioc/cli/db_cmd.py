"""``ioc db``: schema migrations and time-series maintenance."""

from __future__ import annotations

import typer
from rich.console import Console

from ioc.cli import exit_codes

app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


@app.command()
def migrate() -> None:
    """Apply pending migrations (idempotent: a second run applies nothing).

    Example: IOC_DATABASE_URL=postgresql://ioc@db/ioc ioc db migrate
    """
    import psycopg

    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage.migrate import migrate as run_migrations

    try:
        with database_url(get_settings()) as url:
            applied = run_migrations(url)
    except psycopg.OperationalError as exc:
        console.print(f"[red]database unreachable:[/red] {exc}")
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    if applied:
        console.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        console.print("schema is current; nothing to apply")


@app.command()
def status() -> None:
    """List applied and pending migrations and the time-series backend in use. Exit 1 if any are pending."""
    import psycopg

    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage import timeseries
    from ioc.storage.db import connect
    from ioc.storage.migrate import status as migration_status

    try:
        with database_url(get_settings()) as url:
            state = migration_status(url)
            with connect(url) as conn:
                backend = timeseries.active_backend(conn)
    except psycopg.OperationalError as exc:
        console.print(f"[red]database unreachable:[/red] {exc}")
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    for mid in state.applied:
        console.print(f"  [green]applied[/green]  {mid}")
    for mid in state.pending:
        console.print(f"  [yellow]pending[/yellow]  {mid}")
    console.print(f"time-series backend: {backend}")
    if state.pending:
        raise typer.Exit(exit_codes.FAILED)


@app.command()
def maintain() -> None:
    """Create partitions ahead and drop those past retention (native backend; TimescaleDB runs policies).

    `ioc up` and the API run this hourly; this command runs it once, e.g. from cron.
    """
    from ioc.clock import SystemClock
    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage import timeseries
    from ioc.storage.db import connect

    settings = get_settings()
    with database_url(settings) as url, connect(url) as conn:
        report = timeseries.maintain(conn, SystemClock(), settings)
    console.print(report.summary())
