"""``ioc incidents eval``: how many incidents the correlation rules make of raw signals, and how
many of them are wrong (false merges, missed merges) on a labelled scenario."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from ioc.cli.exit_codes import FAILED as EXIT_PROBLEMS
from ioc.cli.exit_codes import OK as EXIT_OK
from ioc.cli.exit_codes import UNAVAILABLE as EXIT_UNREACHABLE

app = typer.Typer(help="Incidents: one case from many signals (docs/incidents.md).", no_args_is_help=True)


@app.command("eval")
def eval_cmd(
    scenario: Annotated[
        Path | None, typer.Argument(help="Labelled scenario (YAML), e.g. tests/data/incidents-scenario.yaml")
    ] = None,
    rules: Annotated[Path | None, typer.Option(help="Rules file; default: IOC_INCIDENT_RULES")] = None,
    database: Annotated[
        bool, typer.Option("--database", help="Replay the alerts stored in IOC_DATABASE_URL (unlabelled)")
    ] = False,
    start: Annotated[datetime | None, typer.Option(help="With --database: from (ISO time)")] = None,
    end: Annotated[datetime | None, typer.Option(help="With --database: to (ISO time)")] = None,
) -> None:
    """Print one JSON line: signals, incidents, false and missed merges (exit 1 when any).

    Examples:
      ioc incidents eval tests/data/incidents-scenario.yaml
      ioc incidents eval --database --start 2026-10-14T00:00+07:00 --end 2026-10-15T00:00+07:00
    """
    from ioc.incidents.evaluate import Result, evaluate, load_scenario, replay, signals_from_database
    from ioc.incidents.rules import RulesError, configured, load_rules

    try:
        ruleset = load_rules(rules) if rules else configured()
    except RulesError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    if database:
        import psycopg

        from ioc.settings import get_settings

        url = get_settings().database_url
        if not url or start is None or end is None:
            typer.echo("--database needs IOC_DATABASE_URL, --start and --end", err=True)
            raise typer.Exit(2)
        try:
            with psycopg.connect(url) as conn:
                signals = signals_from_database(conn, start, end)
        except psycopg.OperationalError as exc:
            typer.echo(f"database unreachable: {exc}", err=True)
            raise typer.Exit(EXIT_UNREACHABLE) from exc
        placed = replay(ruleset, signals)
        incidents = {v for v in placed.values() if v is not None}
        typer.echo(Result(len(signals), len(incidents), 0, 0, 0, {}).as_json())
        raise typer.Exit(EXIT_OK)
    if scenario is None:
        typer.echo("name a labelled scenario file, or --database", err=True)
        raise typer.Exit(2)
    try:
        labelled = load_scenario(scenario)
    except (OSError, KeyError, ValueError) as exc:
        typer.echo(f"{scenario}: {exc}", err=True)
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    result = evaluate(ruleset, labelled)
    typer.echo(result.as_json())
    raise typer.Exit(EXIT_PROBLEMS if result.false_merges or result.missed_merges else EXIT_OK)
