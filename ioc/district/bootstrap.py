"""Load the configured district into the database at start-up (``ioc up`` calls this after migrating).

Validation happens before any write, and every write happens in one transaction: a broken file leaves
the database exactly as it was, with the full list of errors in the exception.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ioc.district.loader import load_district
from ioc.district.seed import SeedSummary, seed_district
from ioc.settings import Settings
from ioc.storage.db import transaction


def load_district_into(database_url: str, settings: Settings, environ: Mapping[str, str] | None = None) -> SeedSummary:
    """Validate ``settings.district_config`` and upsert it into ``database_url``; idempotent.

    Passwords of seed users are read from ``environ`` (default: the process environment).
    Raises :class:`ioc.district.loader.DistrictConfigError` when the file is invalid.
    """
    district = load_district(settings.district_config)
    with transaction(database_url) as conn:
        return seed_district(conn, district, os.environ if environ is None else environ)
