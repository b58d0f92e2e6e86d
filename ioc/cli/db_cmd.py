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
    except RuntimeError as exc:  # e.g. IOC_TIMESERIES_BACKEND=timescale on a server that cannot give it
        console.print(f"[red]cannot migrate:[/red] {exc}")
        raise typer.Exit(exit_codes.FAILED) from exc
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
def check() -> None:
    """The time-series backend in use and, on TimescaleDB, the state of its background jobs
    (last success, failures, last error). Exit 1 if the schema is missing or a job is failing.

    A failing job's work is run by `ioc db maintain` (hourly under `ioc up` and the API), which says so.
    Example: ioc db check
    """
    import psycopg

    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage import timeseries
    from ioc.storage.db import connect

    try:
        with database_url(get_settings()) as url, connect(url) as conn:
            backend = timeseries.active_backend(conn)
            version = conn.execute("SHOW server_version").fetchone()[0]
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            jobs = timeseries.job_states(conn) if ext else []
            why_not = timeseries.timescale_unusable_reason(conn) if backend == "native" else None
    except psycopg.OperationalError as exc:
        console.print(f"[red]database unreachable:[/red] {exc}")
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    console.print(f"PostgreSQL {version}; timescaledb {ext[0] if ext else 'not installed in this database'}")
    console.print(f"time-series backend: {backend}")
    if why_not and "not installed" not in why_not:
        console.print(f"  timescaledb not used: {why_not}")
    failing = [job for job in jobs if job.failing]
    for job in jobs:
        last = job.last_success.isoformat(timespec="seconds") if job.last_success else "never"
        state = "[red]FAILING[/red]" if job.failing else "ok"
        line = (
            f"  job {job.job_id} {job.name}: {state}; last success {last}; "
            f"runs {job.total_runs}, failures {job.total_failures}"
        )
        if job.failing and job.last_error:
            line += f"; last error: {job.last_error}"
        console.print(line)
    if failing:
        console.print(f"{len(failing)} job(s) failing in the background: `ioc db maintain` runs their work itself")
    if backend == "none" or failing:
        raise typer.Exit(exit_codes.FAILED)


@app.command()
def maintain() -> None:
    """Partitions for the retention window and ahead (native), retention to the hour from the
    current settings (both backends), and the work of failing TimescaleDB jobs (said in the output).

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
