"""Which alerts a caller sees: its units' alerts, alerts assigned to them, and alerts that concern
them among several units (``alert_units``: a warning over three communes belongs to each)."""

from __future__ import annotations

from typing import Any


def scope_condition(units: frozenset[str] | None, params: list[Any], table: str = "alerts") -> str:
    """A SQL condition on ``table`` for a caller seeing ``units`` (None: every unit); appends its params."""
    if units is None:
        return "TRUE"
    params.extend([list(units), list(units), list(units)])
    return (f"({table}.unit_id = ANY(%s) OR {table}.assigned_unit_id = ANY(%s) OR EXISTS (SELECT 1 FROM alert_units au"
            f" WHERE au.alert_id = {table}.id AND au.unit_id = ANY(%s)))")  # fmt: skip


def concerned_units(conn: Any, alert_id: int) -> list[str]:
    """The units an alert concerns besides its own unit (several communes under one warning)."""
    return [r[0] for r in conn.execute("SELECT unit_id FROM alert_units WHERE alert_id = %s", (alert_id,))]
