"""Which radio records a unit-bound caller (a commune officer, a device key of a commune) may see.

A broadcast belongs to the communes it played in (``radio_playbacks``) or targets (``unit_ids``,
or clusters of the commune); a programme to the communes of its ``unit_ids`` and clusters; a
recording to whoever may see a broadcast or programme that uses it. ``units=None`` means the
caller sees every unit (district staff): every check then answers True without a query.
"""

from __future__ import annotations

from collections.abc import Collection

import psycopg

_BROADCAST_UNITS = """
    EXISTS (SELECT 1 FROM radio_playbacks p WHERE p.broadcast_id = b.id AND p.unit_id = ANY(%(units)s))
    OR (b.targets -> 'unit_ids') ?| %(units)s
    OR EXISTS (SELECT 1 FROM devices d WHERE d.unit_id = ANY(%(units)s)
               AND (b.targets -> 'cluster_ids') ? d.id)"""

_SCHEDULE_UNITS = """
    s.unit_ids && %(units)s
    OR EXISTS (SELECT 1 FROM devices d WHERE d.id = ANY(s.cluster_ids) AND d.unit_id = ANY(%(units)s))"""

#: A condition on ``radio_schedules s`` for lists: true for programmes of ``%(units)s`` (or all when NULL).
SCHEDULE_FILTER = f"(%(units)s::text[] IS NULL OR {_SCHEDULE_UNITS})"


def _units(units: Collection[str] | None) -> list[str] | None:
    return sorted(units) if units is not None else None


def broadcast_visible(conn: psycopg.Connection, broadcast_id: int, units: Collection[str] | None) -> bool:
    if units is None:
        return True
    row = conn.execute(f"SELECT 1 FROM radio_broadcasts b WHERE b.id = %(id)s AND ({_BROADCAST_UNITS})",
                       {"id": broadcast_id, "units": _units(units)}).fetchone()  # fmt: skip
    return row is not None


def schedule_visible(conn: psycopg.Connection, schedule_id: int, units: Collection[str] | None) -> bool:
    if units is None:
        return True
    row = conn.execute(f"SELECT 1 FROM radio_schedules s WHERE s.id = %(id)s AND ({_SCHEDULE_UNITS})",
                       {"id": schedule_id, "units": _units(units)}).fetchone()  # fmt: skip
    return row is not None


def audio_visible(conn: psycopg.Connection, audio_id: int, units: Collection[str] | None) -> bool:
    """A recording used by a broadcast or programme of ``units``."""
    if units is None:
        return True
    row = conn.execute(
        f"""SELECT 1 WHERE EXISTS (SELECT 1 FROM radio_broadcasts b WHERE b.audio_id = %(id)s AND ({_BROADCAST_UNITS}))
               OR EXISTS (SELECT 1 FROM radio_schedules s WHERE s.audio_id = %(id)s AND ({_SCHEDULE_UNITS}))""",
        {"id": audio_id, "units": _units(units)},
    ).fetchone()
    return row is not None
