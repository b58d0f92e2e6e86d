"""``ioc district apply FILE``: validate a district file, then load it into the database, idempotently.

``ioc up`` loads the configured district too, but it also starts the simulator and the detectors;
a district adopting the product needs to load (and later update) its units, devices, users and
categories on their own, and to see what a change would do before doing it. So:

* nothing is written unless the whole file is valid (every error is listed, as ``ioc config check``);
* the load is :func:`ioc.district.seed.seed_district` (the same upserts as ``ioc up``), in one
  transaction;
* the diff is measured, not predicted: the rows are read before and after the load in the same
  transaction, and compared; ``--dry-run`` then rolls the transaction back. What is printed is
  therefore exactly what the load does (or would do);
* a unit merged into another on a date (``valid_to`` + ``successor``) is listed as a merge.

Report categories have no table: the API reads them from the file, so they are validated and counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ioc.district.models import District
from ioc.district.seed import SeedSummary, seed_district

_SNAPSHOTS = {
    "unit": "SELECT id, name, level, parent_id, valid_from::text, valid_to::text, successor_id,"
    " properties - 'synthetic_geometry', geometry IS NOT NULL AS has_polygon FROM units",
    "device": "SELECT id, kind, unit_id, name, lat, lon, expected_interval_s, enabled FROM devices",
    "user": "SELECT username, display_name, role, unit_id, password_hash IS NOT NULL AS has_password FROM users",
}


@dataclass
class ApplyResult:
    summary: SeedSummary
    changes: list[str] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    categories: int = 0
    applied: bool = False


def _snapshot(conn: psycopg.Connection) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for what, query in _SNAPSHOTS.items():
        cur = conn.execute(query)
        names = [d.name for d in cur.description]
        out[what] = {str(row[0]): dict(zip(names, row, strict=True)) for row in cur.fetchall()}
    return out


def diff(before: dict[str, dict[str, dict[str, Any]]], after: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One line per added, changed or removed row: ``+ unit tra-leng``, ``~ device cam-1: enabled True -> False``."""
    lines: list[str] = []
    for what in _SNAPSHOTS:
        old, new = before[what], after[what]
        for key in sorted(set(old) | set(new)):
            if key not in old:
                lines.append(f"+ {what} {key}")
            elif key not in new:
                lines.append(f"- {what} {key}")
            elif old[key] != new[key]:
                changed = [f"{c}: {old[key][c]!r} -> {new[key][c]!r}" for c in new[key] if old[key][c] != new[key][c]]
                lines.append(f"~ {what} {key}: " + "; ".join(changed))
    return lines


def apply_district(
    conn: psycopg.Connection, district: District, environ: Mapping[str, str], *, dry_run: bool = False
) -> ApplyResult:
    """Load ``district`` on ``conn`` (already validated); with ``dry_run`` nothing stays written."""
    with conn.transaction():
        before = _snapshot(conn)
        summary = seed_district(conn, district, environ)
        after = _snapshot(conn)
        result = ApplyResult(summary=summary, changes=diff(before, after), categories=len(district.report_categories))
        for unit in district.units:
            if unit.successor and unit.valid_to:
                result.merges.append(f"{unit.id} -> {unit.successor} from {unit.valid_to}")
        if dry_run:
            raise _DryRun(result)
    result.applied = True
    return result


class _DryRun(Exception):
    """Leaves the transaction block with a rollback, carrying what the load would have done."""

    def __init__(self, result: ApplyResult) -> None:
        super().__init__("dry run")
        self.result = result


def plan_or_apply(
    conn: psycopg.Connection, district: District, environ: Mapping[str, str], *, dry_run: bool = False
) -> ApplyResult:
    """:func:`apply_district`, returning the would-be result of a dry run after rolling it back."""
    try:
        return apply_district(conn, district, environ, dry_run=dry_run)
    except _DryRun as stop:
        return stop.result
