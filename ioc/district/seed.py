"""Write a validated district into the database: units, their former names, devices and seed users.

The configuration file is the source of truth for what it lists, and the database keeps history:

* units and devices are upserted by id; a row is only rewritten when something changed, so a second
  run changes nothing. Units that left the file are kept (records still point at them); devices that
  left it are disabled, not deleted (their telemetry stays attributable).
* a unit's successor is set in a second pass, because a successor may be listed after the unit.
* seed users are upserted by user name; a password hash is written only for a user that has none,
  from the environment variable the file names. A password changed later in the application is never
  overwritten by a restart, and no password is ever read from the file itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ioc.district.models import Camera, Clinic, District, Integration, RadioCluster, School, Sensor, Unit
from ioc.text import fold, nfc

log = logging.getLogger(__name__)

DEVICE_SOURCE = "district_config"
"""``devices.properties.source`` of the rows this module owns (other sources register devices too)."""


@dataclass
class SeedSummary:
    """What one load did; ``str()`` is the log line of ``ioc up``."""

    district: str
    units: int = 0
    units_changed: int = 0
    devices: int = 0
    devices_changed: int = 0
    devices_disabled: int = 0
    users: int = 0
    users_changed: int = 0
    users_without_password: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"district {self.district}: {self.units} units ({self.units_changed} changed), "
            f"{self.devices} devices ({self.devices_changed} changed, {self.devices_disabled} disabled), "
            f"{self.users} users ({self.users_changed} changed)"
        )
        if self.users_without_password:
            text += f"; {len(self.users_without_password)} without password"
        return text


def seed_district(conn: psycopg.Connection, district: District, environ: Mapping[str, str]) -> SeedSummary:
    """Upsert everything of ``district`` on ``conn`` (the caller owns the transaction)."""
    summary = SeedSummary(district=district.id)
    _seed_units(conn, district, summary)
    _seed_devices(conn, district, summary)
    _seed_users(conn, district, environ, summary)
    return summary


# -- units ----------------------------------------------------------------------------------------

_UPSERT_UNIT = """
INSERT INTO units AS u (id, name, name_search, level, parent_id, valid_from, valid_to, geometry, properties)
VALUES (%(id)s, %(name)s, %(name_search)s, %(level)s, %(parent_id)s, %(valid_from)s, %(valid_to)s,
        %(geometry)s, %(properties)s)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, name_search = EXCLUDED.name_search, level = EXCLUDED.level,
    parent_id = EXCLUDED.parent_id, valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to,
    geometry = EXCLUDED.geometry, properties = EXCLUDED.properties, updated_at = now()
WHERE (u.name, u.name_search, u.level, u.parent_id, u.valid_from, u.valid_to, u.geometry, u.properties)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.name_search, EXCLUDED.level, EXCLUDED.parent_id,
                        EXCLUDED.valid_from, EXCLUDED.valid_to, EXCLUDED.geometry, EXCLUDED.properties)
"""


def _parents_first(units: list[Unit]) -> list[Unit]:
    """Units ordered so that a parent is written before its children (the foreign key needs it)."""
    by_id = {u.id: u for u in units}

    def depth(unit: Unit) -> int:
        n = 0
        while unit.parent and unit.parent in by_id:
            unit, n = by_id[unit.parent], n + 1
        return n

    return sorted(units, key=depth)


def _seed_units(conn: psycopg.Connection, district: District, summary: SeedSummary) -> None:
    for unit in _parents_first(district.units):
        properties = {**unit.properties, "name_en": unit.name_en, "code": unit.code, "aliases": unit.aliases or None}
        row = {
            "id": unit.id,
            "name": nfc(unit.name),
            "name_search": fold(unit.name),
            "level": unit.level,
            "parent_id": unit.parent,
            "valid_from": unit.valid_from,
            "valid_to": unit.valid_to,
            "geometry": Jsonb(unit.polygon.model_dump()) if unit.polygon else None,
            "properties": Jsonb({k: v for k, v in properties.items() if v is not None}),
        }
        summary.units_changed += conn.execute(_UPSERT_UNIT, row).rowcount
        summary.units += 1
    for unit in district.units:
        summary.units_changed += conn.execute(
            "UPDATE units SET successor_id = %(s)s, updated_at = now() "
            "WHERE id = %(id)s AND successor_id IS DISTINCT FROM %(s)s",
            {"id": unit.id, "s": unit.successor},
        ).rowcount
        _seed_former_names(conn, unit)


def _seed_former_names(conn: psycopg.Connection, unit: Unit) -> None:
    names = [nfc(f.name) for f in unit.former_names]
    conn.execute("DELETE FROM unit_names WHERE unit_id = %s AND NOT (name = ANY(%s))", (unit.id, names))
    for former in unit.former_names:
        conn.execute(
            "INSERT INTO unit_names (unit_id, name, valid_from, valid_to) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (unit_id, name) DO UPDATE SET valid_from = EXCLUDED.valid_from, valid_to = EXCLUDED.valid_to",
            (unit.id, nfc(former.name), former.valid_from, former.valid_to),
        )


# -- devices --------------------------------------------------------------------------------------

_UPSERT_DEVICE = """
INSERT INTO devices AS d (id, kind, unit_id, name, lat, lon, expected_interval_s, properties, enabled)
VALUES (%(id)s, %(kind)s, %(unit_id)s, %(name)s, %(lat)s, %(lon)s, %(expected_interval_s)s, %(properties)s,
        %(enabled)s)
ON CONFLICT (id) DO UPDATE SET
    kind = EXCLUDED.kind, unit_id = EXCLUDED.unit_id, name = EXCLUDED.name, lat = EXCLUDED.lat,
    lon = EXCLUDED.lon, expected_interval_s = EXCLUDED.expected_interval_s, properties = EXCLUDED.properties,
    enabled = EXCLUDED.enabled, updated_at = now()
WHERE (d.kind, d.unit_id, d.name, d.lat, d.lon, d.expected_interval_s, d.properties, d.enabled)
      IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.unit_id, EXCLUDED.name, EXCLUDED.lat, EXCLUDED.lon,
                        EXCLUDED.expected_interval_s, EXCLUDED.properties, EXCLUDED.enabled)
"""

_COMMON = {"id", "name", "unit", "position", "expected_interval_s", "enabled"}


def device_rows(district: District) -> list[dict[str, Any]]:
    """The ``devices`` rows of the district; ``kind`` is the MQTT topic's kind.

    Cameras are ``camera``, loudspeaker clusters ``radio``, sensors ``sensor``, schools ``school``,
    clinics ``clinic``; an integration has its own kind (``report``, ``dossier``...) and no position.

    Everything that has no column of its own (stream URL, zones, rules, cluster, levels...) goes to
    ``properties``, as JSON, so detectors and the radio service read the configuration from the row.
    """
    rows = [_camera_row(c) for c in district.cameras]
    rows += [_radio_row(cluster) for cluster in district.radio_clusters]
    rows += [_sensor_row(s) for s in district.sensors]
    rows += [_integration_row(i) for i in district.integrations]
    rows += [_row("school", s, s.unit, s.model_dump(mode="json", exclude=_COMMON)) for s in district.schools]
    rows += [_row("clinic", c, c.unit, {}) for c in district.clinics]
    # The file gives how often a device reports; the table keeps how long it may stay silent before
    # presence marks it offline: the interval times the grace factor, so one late report is not an outage.
    grace = district.thresholds.offline_grace_factor
    for row in rows:
        row["properties"]["report_interval_s"] = row["expected_interval_s"]
        row["expected_interval_s"] = math.ceil(row["expected_interval_s"] * grace)
    return rows


def _row(
    kind: str,
    item: Camera | RadioCluster | Sensor | Integration | School | Clinic,
    unit: str,
    properties: dict[str, Any],
) -> dict[str, Any]:
    position = getattr(item, "position", None)
    return {
        "id": item.id,
        "kind": kind,
        "unit_id": unit,
        "name": nfc(item.name),
        "lat": position.lat if position else None,
        "lon": position.lon if position else None,
        "expected_interval_s": item.expected_interval_s,
        "enabled": item.enabled,
        "properties": {**properties, "source": DEVICE_SOURCE},
    }


def _camera_row(camera: Camera) -> dict[str, Any]:
    return _row("camera", camera, camera.unit, camera.model_dump(mode="json", exclude=_COMMON))


def _radio_row(cluster: RadioCluster) -> dict[str, Any]:
    return _row("radio", cluster, cluster.unit, {"horns": cluster.horns})


def _sensor_row(sensor: Sensor) -> dict[str, Any]:
    properties = sensor.model_dump(mode="json", exclude=_COMMON | {"kind"})
    return _row("sensor", sensor, sensor.unit, {**properties, "sensor_kind": sensor.kind})


def _integration_row(integration: Integration) -> dict[str, Any]:
    return _row(integration.kind, integration, integration.unit, {**integration.properties, "integration": True})


def _seed_devices(conn: psycopg.Connection, district: District, summary: SeedSummary) -> None:
    rows = device_rows(district)
    for row in rows:
        summary.devices_changed += conn.execute(
            _UPSERT_DEVICE, {**row, "properties": Jsonb(row["properties"])}
        ).rowcount
    summary.devices = len(rows)
    summary.devices_disabled = conn.execute(
        "UPDATE devices SET enabled = false, updated_at = now() "
        "WHERE enabled AND properties->>'source' = %s AND NOT (id = ANY(%s))",
        (DEVICE_SOURCE, [r["id"] for r in rows]),
    ).rowcount


# -- users ----------------------------------------------------------------------------------------


def _seed_users(conn: psycopg.Connection, district: District, environ: Mapping[str, str], summary: SeedSummary) -> None:
    from ioc.auth.passwords import hash_password, password_problem

    missing: list[str] = []
    for user in district.users:
        existing = conn.execute(
            "SELECT display_name, role, unit_id, password_hash IS NOT NULL FROM users WHERE username = %s",
            (user.username,),
        ).fetchone()
        password = environ.get(user.password_env) if user.password_env else None
        password_hash = None
        if password and not (existing and existing[3]):
            problem = password_problem(password, username=user.username)
            if problem:
                log.warning(
                    "seed user %s: %s in %s; created without a password", user.username, problem, user.password_env
                )
            else:
                password_hash = hash_password(password)
        if existing is None:
            conn.execute(
                "INSERT INTO users (username, display_name, role, unit_id, password_hash) VALUES (%s, %s, %s, %s, %s)",
                (user.username, nfc(user.display_name), user.role, user.unit, password_hash),
            )
            summary.users_changed += 1
        else:
            summary.users_changed += conn.execute(
                "UPDATE users SET display_name = %(name)s, role = %(role)s, unit_id = %(unit)s, "
                "password_hash = COALESCE(password_hash, %(hash)s) "
                "WHERE username = %(username)s AND ((display_name, role, unit_id) IS DISTINCT FROM "
                "(%(name)s, %(role)s, %(unit)s) OR (password_hash IS NULL AND %(hash)s::text IS NOT NULL))",
                {
                    "username": user.username,
                    "name": nfc(user.display_name),
                    "role": user.role,
                    "unit": user.unit,
                    "hash": password_hash,
                },
            ).rowcount
        has_password = password_hash is not None or bool(existing and existing[3])
        if not has_password:
            summary.users_without_password.append(user.username)
            missing.append(f"{user.username} ({user.password_env or 'no password_env'})")
        summary.users += 1
    if missing:
        log.warning(
            "%d seed user(s) have no password and cannot log in until the variable is set or an admin sets one: %s",
            len(missing),
            ", ".join(missing),
        )
