"""``ioc kpi``: sector figures and their data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ioc.cli import exit_codes

app = typer.Typer(help="Sector KPIs: import dossier spreadsheets (docs/kpi.md).", no_args_is_help=True)
console = Console()


@app.command("import")
def import_sheet(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or XLSX of the one-stop system.")],
    mapping: Annotated[Path | None, typer.Option(help="Column mapping (default: config/dossier-import.yaml).")] = None,
) -> None:
    """Import dossiers from a spreadsheet; bad rows are listed with their row number and reason, good
    rows are kept, and importing the same file again changes nothing. Exit 1 if any row was bad.

    Example: ioc kpi import ho-so-thang-10.xlsx
    """
    from datetime import UTC, datetime

    from ioc.kpi.importer import Mapping, import_dossiers
    from ioc.runtime import database_url
    from ioc.settings import PROJECT_ROOT, get_settings
    from ioc.storage.db import connect

    settings = get_settings()
    rules = Mapping.load(mapping or PROJECT_ROOT / "config" / "dossier-import.yaml")
    with database_url(settings) as url, connect(url) as conn, conn.transaction():
        report = import_dossiers(conn, file.read_bytes(), file.name, rules, now=datetime.now(UTC),
                                 retention_days=settings.events_retention_days)  # fmt: skip
    for number, reason in report.bad:
        console.print(f"  [red]row {number}[/red]: {reason}")
    console.print(f"{report.rows} rows: {report.kept} kept, {len(report.bad)} bad; {report.events_added} new events")
    if report.bad:
        raise typer.Exit(exit_codes.FAILED)
