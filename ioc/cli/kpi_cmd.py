"""``ioc kpi``: sector figures and their data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ioc.cli import exit_codes

app = typer.Typer(help="Sector KPIs: import dossier spreadsheets (docs/kpi.md).", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


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
                                 retention_days=settings.dossier_retention_days)  # fmt: skip
    for number, reason in report.bad:
        console.print(f"  [red]row {number}[/red]: {reason}")
    for number, note in report.flagged[:50]:
        console.print(f"  [yellow]row {number}[/yellow]: {note}")
    if len(report.flagged) > 50:
        console.print(f"  ... and {len(report.flagged) - 50} more flagged rows")
    for assumption in report.assumptions:
        console.print(f"  assumed: {assumption}")
    console.print(f"{report.rows} rows: {report.kept} kept ({len(report.flagged)} flagged), {len(report.bad)} bad; "
                  f"{report.events_added} new events")  # fmt: skip
    if report.bad:
        raise typer.Exit(exit_codes.FAILED)


@app.command("check")
def check(
    first_day: Annotated[str, typer.Option("--from", help="First local date (YYYY-MM-DD).")],
    last_day: Annotated[str, typer.Option("--to", help="Last local date, included (YYYY-MM-DD).")],
    unit: Annotated[list[str] | None, typer.Option(help="Only this unit: id, code, name or alias (repeat).")] = None,
    refold: Annotated[bool, typer.Option(help="Also re-fold the dossiers within retention from their events.")] = False,
    repair: Annotated[bool, typer.Option(help="Re-fold stale dossiers and rebuild a disagreeing rollup.")] = False,
) -> None:
    """Recompute every dossier figure from the raw data for a period and compare it with the rollup
    the API serves; print each difference (unit, figure, rollup, raw). Exit 1 on any difference
    (also when --repair fixed it: run again to confirm).

    Example: ioc kpi check --from 2026-10-01 --to 2026-10-31 --refold
    """
    from datetime import UTC, date, datetime, timedelta

    from ioc.kpi.dossiers import refresh, stale_and_checked
    from ioc.kpi.rollups import differences, rebuild
    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage.db import connect

    try:
        first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    except ValueError as exc:
        raise typer.BadParameter(f"dates are YYYY-MM-DD: {exc}") from exc
    if last < first:
        raise typer.BadParameter("--to is before --from")
    problems = 0
    settings = get_settings()
    with database_url(settings) as url, connect(url) as conn, conn.transaction():
        if refold:
            days = settings.dossier_retention_days
            kept_since = datetime.now(UTC) - timedelta(days=days) if days else None
            stale, checked = stale_and_checked(conn, kept_since)
            for dossier_id in stale[:50]:
                console.print(f"  [red]dossier {dossier_id}[/red]: its row is not the fold of its events")
            total = conn.execute("SELECT count(*) FROM dossiers").fetchone()[0]
            console.print(f"re-fold: checked {checked} of {total} dossiers; {len(stale)} rows differ from their events")
            problems += len(stale)
            if stale and repair:
                console.print(f"re-folded from their events: {refresh(conn, stale)} dossiers")
        from ioc.district.aliases import UnitResolver, UnknownUnit

        try:  # a unit by its id, code, name or alias
            units = UnitResolver.from_database(conn).resolve_all(unit) if unit else None
        except UnknownUnit as exc:
            raise typer.BadParameter(str(exc), param_hint="--unit") from exc
        found = differences(conn, first, last, units)
        for unit_id, figure, rolled, raw in found:
            console.print(f"  [red]{unit_id}[/red] {figure}: rollup {rolled}, raw {raw}")
        console.print(f"{first}..{last}: {len(found)} figures differ between the rollup and the raw recomputation")
        problems += len(found)
        if found and repair:
            console.print(f"rollup rebuilt from the dossiers: {rebuild(conn)} rows")
    if problems:
        raise typer.Exit(exit_codes.FAILED)


@app.command("report")
def report(
    first_day: Annotated[str, typer.Option("--from", help="First local date (YYYY-MM-DD).")],
    last_day: Annotated[str, typer.Option("--to", help="Last local date, included (YYYY-MM-DD).")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx, csv or md.")] = "md",
    out: Annotated[
        Path | None,
        typer.Option(help="File to write (default: md to the screen; xlsx/csv to bao-cao-ho-so-FROM-TO.<format>)."),
    ] = None,  # fmt: skip
    unit: Annotated[list[str] | None, typer.Option(help="Only this unit: id, code, name or alias (repeat).")] = None,
) -> None:
    """The periodic one-stop report with Vietnamese labels: per unit, per level and per procedure, with
    how each figure is computed. The same numbers as GET /api/kpi/report.

    Example: ioc kpi report --from 2026-10-01 --to 2026-12-31 --format xlsx
    """
    from datetime import date

    from ioc.district.aliases import UnitResolver, UnknownUnit
    from ioc.kpi.report import build_report, render
    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage.db import connect

    if fmt not in ("xlsx", "csv", "md"):
        raise typer.BadParameter("--format is xlsx, csv or md")
    try:
        first, last = date.fromisoformat(first_day), date.fromisoformat(last_day)
    except ValueError as exc:
        raise typer.BadParameter(f"dates are YYYY-MM-DD: {exc}") from exc
    if last < first:
        raise typer.BadParameter("--to is before --from")
    with database_url(get_settings()) as url, connect(url) as conn:
        try:
            units = UnitResolver.from_database(conn).resolve_all(unit) if unit else None
        except UnknownUnit as exc:
            raise typer.BadParameter(str(exc), param_hint="--unit") from exc
        body, _ = render(build_report(conn, first, last, units), fmt)
    if out is None and fmt == "md":
        typer.echo(body.decode("utf-8"))
        return
    path = out or Path(f"bao-cao-ho-so-{first:%Y%m%d}-{last:%Y%m%d}.{fmt}")
    path.write_bytes(body)
    console.print(f"wrote {path}")
