"""What the public may see of citizen reports (Open311 lists, any public map): privacy by design.

* A report is known publicly by its **public id** (``YC-XXXX-XXXX``, column ``public_id``), never by
  its tracking code: the tracking code is the reporter's secret, the only key that follows, rates
  and reopens the report.
* Each category has a **public listing level** (``config/district.yaml``, ``public_listing``):
  ``public`` shows the place as given; ``coarse`` rounds it to :data:`COARSE_DEGREES` (about 1.1 km)
  and drops the address; ``ioc_only`` (and every report stored as IOC-only) is not listed at all.
* A **sensitive** category's text (and media links) never appear.
* Contact data (name, phone, e-mail) never appear, whatever the level.

The SQL of these lists lives here, so every public surface applies the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from ioc.reports.service import Category

PUBLIC_PREFIX = "YC"
#: Coordinates of a ``coarse`` category are rounded to this many degrees (0.01° ≈ 1.1 km).
COARSE_DEGREES = 0.01
OPEN = ("received", "in_progress")

_COLUMNS = ("public_id, category, status, description, lat, lon, address, created_at, updated_at, due_at, "
            "media_urls, privacy")  # fmt: skip


def display_id(public_id: str) -> str:
    return f"{PUBLIC_PREFIX}-{public_id[:4]}-{public_id[4:]}"


def parse_id(text: str) -> str | None:
    """The stored public id of ``YC-XXXX-XXXX`` (forgiving about case and dashes), else None. A
    tracking code (``PA-...``) is not a public id."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if not cleaned.startswith(PUBLIC_PREFIX) or len(cleaned) != 8 + len(PUBLIC_PREFIX):
        return None
    return cleaned[len(PUBLIC_PREFIX) :]


@dataclass(frozen=True)
class Filters:
    """Open311's list filters; ``public_ids`` overrides all the others (the spec says so)."""

    public_ids: list[str] | None = None
    service_codes: list[str] | None = None
    statuses: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 1000


def listed_categories(categories: dict[str, Category]) -> list[str]:
    return [c.id for c in categories.values() if c.listing != "ioc_only"]


def requests(conn: psycopg.Connection, filters: Filters, categories: dict[str, Category]) -> list[dict[str, Any]]:
    """The public view of the reports matching ``filters``, newest first."""
    where = ["privacy <> 'ioc_only'", "category = ANY(%s)"]
    params: list[Any] = [listed_categories(categories)]
    if filters.public_ids is not None:
        where.append("public_id = ANY(%s)")
        params.append(filters.public_ids)
    else:
        if filters.service_codes:
            where.append("category = ANY(%s)")
            params.append(filters.service_codes)
        if filters.statuses:
            where.append("status = ANY(%s)")
            params.append(filters.statuses)
        if filters.start:
            where.append("created_at >= %s")
            params.append(filters.start)
        if filters.end:
            where.append("created_at <= %s")
            params.append(filters.end)
        if not (filters.start or filters.end):
            where.append("created_at >= now() - interval '90 days'")
    params.append(filters.limit)
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM reports WHERE {' AND '.join(where)} ORDER BY created_at DESC LIMIT %s", params
    ).fetchall()
    return [_view(row, categories) for row in rows]


def _coarse(value: float | None) -> float | None:
    return None if value is None else round(round(value / COARSE_DEGREES) * COARSE_DEGREES, 6)


def _view(row: tuple, categories: dict[str, Category]) -> dict[str, Any]:
    public_id, code, status, description, lat, lon, address, created, updated, due, media, _privacy = row
    category = categories[code]
    if category.listing == "coarse":
        lat, lon, address = _coarse(lat), _coarse(lon), None
    if category.sensitive:
        description, media = None, []
    return {
        "public_id": public_id,
        "service_code": code,
        "service_name": category.name,
        "status": status,
        "description": description,
        "lat": lat,
        "lon": lon,
        "address": address,
        "created_at": created,
        "updated_at": updated,
        "due_at": due,
        "media_url": media[0] if media else None,
        "open": status in OPEN,
    }


def public_id_of(conn: psycopg.Connection, report_id: int) -> str:
    row = conn.execute("SELECT public_id FROM reports WHERE id = %s", (report_id,)).fetchone()
    assert row is not None
    return row[0]
