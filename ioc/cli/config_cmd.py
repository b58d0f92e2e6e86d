"""``ioc config``: validate the district configuration and show its unit tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ioc.cli import exit_codes

app = typer.Typer(help="District configuration (config/district.yaml).", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

FileArg = Annotated[
    Path | None,
    typer.Argument(help="The YAML file (default: IOC_DISTRICT_CONFIG, i.e. config/district.yaml).", show_default=False),
]


def _resolve(file: Path | None) -> Path:
    if file is not None:
        return file
    from ioc.settings import get_settings

    return get_settings().district_config


@app.command()
def check(file: FileArg = None) -> None:
    """Check a district file and list every error with its path; exit 1 when there is any.

    Checks the schema, duplicate ids, unknown unit references, cycles in the unit tree, polygon validity and
    overlaps, devices outside their unit, camera zones and rules. Exit codes: 0 valid, 1 invalid, 3 unreadable.

    Example: ioc config check config/district.yaml

    prints for instance "units[3].polygon: overlaps Trà Kót (units[4]) by about 50.17 km²".
    """
    from ioc.district.loader import validate_district

    path = _resolve(file)
    if not path.is_file():
        console.print(f"[red]cannot read {escape(str(path))}[/red]: no such file")
        raise typer.Exit(exit_codes.UNAVAILABLE)
    district, errors = validate_district(path)
    if errors or district is None:
        for error in errors:
            where = f"[bold]{escape(error.path)}[/bold]: " if error.path else ""
            console.print(f"{where}{escape(error.message)}")
        console.print(f"[red]INVALID[/red]: {len(errors)} error(s) in {escape(str(path))}")
        raise typer.Exit(exit_codes.FAILED)
    horns = sum(c.horns for c in district.radio_clusters)
    counts = [
        f"{len(district.units)} units ({len(district.leaf_units())} leaf units today)",
        f"{len(district.cameras)} cameras",
        f"{len(district.radio_clusters)} radio clusters ({horns} horns)",
        f"{len(district.sensors)} sensors",
        f"{len(district.integrations)} integrations",
        f"{len(district.report_categories)} report categories",
        f"{len(district.kpi_targets)} KPI targets",
        f"{len(district.users)} seed users",
    ]
    console.print(f"[green]OK[/green]: {escape(district.name)}: {', '.join(counts)}")
    without = [u.id for u in district.units if u.polygon is None]
    if without:
        # Polygons are optional: without one, a unit is not found by position (map, reports by GPS).
        console.print(
            f"note: {len(without)} of {len(district.units)} units have no polygon (optional; positions in them "
            f"are not checked and cannot be placed on the map): {escape(', '.join(without[:10]))}"
            + (" ..." if len(without) > 10 else "")
        )


@app.command("show-units")
def show_units(file: FileArg = None) -> None:
    """Print the unit tree with each unit's level, id and number of devices.

    Example: ioc config show-units
    """
    from collections import Counter

    from rich.tree import Tree

    from ioc.district.loader import DistrictConfigError, load_district
    from ioc.district.seed import device_rows

    path = _resolve(file)
    try:
        district = load_district(path)
    except DistrictConfigError as exc:
        console.print(f"[red]invalid configuration[/red] ({len(exc.errors)} errors): run `ioc config check {path}`")
        raise typer.Exit(exit_codes.FAILED) from exc
    devices = Counter(row["unit_id"] for row in device_rows(district))

    def label(unit_id: str) -> str:
        unit = district.unit(unit_id)
        assert unit is not None
        text = f"[bold]{escape(unit.name)}[/bold] [dim]{unit.level} · {unit.id}[/dim]"
        if devices[unit.id]:
            text += f" · {devices[unit.id]} devices"
        if unit.valid_to:
            text += f" [yellow]until {unit.valid_to}" + (f" → {unit.successor}" if unit.successor else "") + "[/yellow]"
        return text

    def grow(node: Tree, parent_id: str) -> None:
        for child in district.children(parent_id):
            grow(node.add(label(child.id)), child.id)

    for root in district.children(None):
        tree = Tree(label(root.id))
        grow(tree, root.id)
        console.print(tree)
