"""``ioc district``: make a district's configuration from its boundaries, and load it (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ioc.cli import exit_codes

app = typer.Typer(help="Adopt a district: configuration skeleton and loading.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


@app.command()
def init(
    boundaries: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="GeoJSON FeatureCollection of the district's communes (OpenStreetMap or national export).",
        ),
    ],  # fmt: skip
    out: Annotated[Path, typer.Option(help="The YAML to write; its geometry file is written beside it.")] = Path(
        "config/district.yaml"
    ),
    district_id: Annotated[str | None, typer.Option(help="Id of the district (default: from its name).")] = None,
    district_name: Annotated[
        str | None, typer.Option(help="Name of the district, when the file has no outline.")
    ] = None,
    name_key: Annotated[str | None, typer.Option(help="Feature property holding the name (default: guessed).")] = None,
    code_key: Annotated[str | None, typer.Option(help="Feature property holding the official code.")] = None,
) -> None:
    """Write a configuration skeleton (units with names, levels, codes and agency aliases) from a boundary file.

    Example: ioc district init --boundaries ranh-gioi-xa.geojson --district-name "Nam Trà My" --out config/ntm.yaml
    """
    from ioc.district.boundaries import BoundaryError, write_skeleton

    try:
        skeleton = write_skeleton(boundaries, out, district_id=district_id, district_name=district_name,
                                  name_key=name_key, code_key=code_key)  # fmt: skip
    except BoundaryError as exc:
        console.print(f"[red]cannot build the skeleton[/red]: {escape(str(exc))}")
        raise typer.Exit(exit_codes.FAILED) from exc
    for note in skeleton.notes:
        console.print(f"note: {escape(note)}")
    units = skeleton.config["units"]
    coded = sum(1 for u in units if u.get("code"))
    console.print(f"wrote {escape(str(out))}: {len(units)} units ({coded} with a code); next: ioc district apply {out}")


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The district YAML.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
) -> None:
    """Validate FILE, then load or update its units, devices and users (idempotent; a second run changes nothing).

    Prints one line per added (+), changed (~) or removed (-) row, and the dated unit merges. Exit 1 when
    the file is invalid (nothing is written), 3 when the database is unreachable.

    Example: ioc district apply config/district.yaml --dry-run
    """
    import os

    import psycopg

    from ioc.district.apply import plan_or_apply
    from ioc.district.loader import validate_district
    from ioc.runtime import database_url
    from ioc.settings import get_settings
    from ioc.storage.db import connect
    from ioc.storage.migrate import migrate

    district, errors = validate_district(file)
    if errors or district is None:
        for error in errors:
            console.print(escape(str(error)))
        console.print(f"[red]INVALID[/red]: {len(errors)} error(s) in {escape(str(file))}; nothing written")
        raise typer.Exit(exit_codes.FAILED)
    try:
        with database_url(get_settings()) as url:
            migrate(url)
            with connect(url) as conn:
                result = plan_or_apply(conn, district, os.environ, dry_run=dry_run)
    except psycopg.OperationalError as exc:
        console.print(f"[red]database unreachable:[/red] {exc}")
        raise typer.Exit(exit_codes.UNAVAILABLE) from exc
    for line in result.changes:
        console.print(escape(line))
    for merge in result.merges:
        console.print(f"merge: {escape(merge)}")
    verb = "would change" if dry_run else "changed"
    note = " (dry run: nothing written)" if dry_run else ""
    console.print(
        f"{escape(str(result.summary))}; {result.categories} report categories (read from the file); "
        f"{len(result.changes)} rows {verb}{note}"
    )
