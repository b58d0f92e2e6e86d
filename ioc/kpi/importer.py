"""Import dossiers from a spreadsheet exported by the one-stop system (CSV or XLSX).

Each good row becomes the lifecycle events it implies (received; resolved or refused; paid online;
digitised), stored like events from MQTT with ``ON CONFLICT DO NOTHING`` on (dossier, event,
time): importing the same sheet twice changes nothing, and a sheet overlapping MQTT events does not
double them. Bad rows are reported with their row number (the header is row 1) and the reason;
good rows are kept. Columns are named in a mapping file (``config/dossier-import.yaml``), so a
differently laid-out export needs a new mapping, not new code.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.types.json import Jsonb

from ioc.clock import LOCAL_TZ
from ioc.kpi.dossiers import refresh
from ioc.storage.timeseries import ensure_months, month_start
from ioc.text import fold


@dataclass
class ImportReport:
    rows: int = 0
    kept: int = 0
    events_added: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Mapping:
    columns: dict[str, str]
    channels: dict[str, str]
    yes: set[str]
    date_formats: list[str]

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return cls(
            columns=data["columns"],
            channels={fold(k): v for k, v in data.get("channels", {}).items()},
            yes={fold(str(v)) for v in data.get("true_values", [])},
            date_formats=list(data.get("date_formats", [])),
        )


def _rows(data: bytes, filename: str) -> list[list[Any]]:
    if filename.lower().endswith((".xlsx", ".xlsm")):
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).active
        return [list(r) for r in sheet.iter_rows(values_only=True)]
    text = data.decode("utf-8-sig")
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    return [list(r) for r in csv.reader(io.StringIO(text), dialect)]


class BadRow(ValueError):
    pass


def _date(value: Any, mapping: Mapping, name: str) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=LOCAL_TZ)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=LOCAL_TZ)
    text = str(value).strip()
    for fmt in mapping.date_formats:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=LOCAL_TZ)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)
    except ValueError:
        raise BadRow(f"{name}: {text!r} is not a date ({', '.join(mapping.date_formats)})") from None


def import_dossiers(conn: psycopg.Connection, data: bytes, filename: str, mapping: Mapping, *,
                    now: datetime, retention_days: int = 730) -> ImportReport:  # fmt: skip
    """Import the sheet in ``conn``'s transaction."""
    table = _rows(data, filename)
    report = ImportReport()
    if not table:
        return report
    header = [fold(str(h or "")) for h in table[0]]
    where: dict[str, int] = {}
    for name, column in mapping.columns.items():
        if fold(column) in header:
            where[name] = header.index(fold(column))
    missing = [mapping.columns[n] for n in ("dossier_id", "unit_id", "received_at") if n not in where]
    if missing:
        report.bad.append((1, f"missing columns: {', '.join(missing)}"))
        return report
    units = {r[0] for r in conn.execute("SELECT id FROM units").fetchall()}
    oldest = now - timedelta(days=retention_days)
    events: list[tuple] = []
    for number, raw in enumerate(table[1:], start=2):
        if not any(v not in (None, "") for v in raw):
            continue
        report.rows += 1

        def cell(name: str, raw: list[Any] = raw) -> Any:
            index = where.get(name)
            return raw[index] if index is not None and index < len(raw) else None

        try:
            dossier = str(cell("dossier_id") or "").strip()
            if not dossier:
                raise BadRow(f"{mapping.columns['dossier_id']} is empty")
            unit = str(cell("unit_id") or "").strip()
            if unit not in units:
                raise BadRow(f"unit {unit!r} is not a known unit id")
            received = _date(cell("received_at"), mapping, mapping.columns["received_at"])
            if received is None:
                raise BadRow(f"{mapping.columns['received_at']} is empty")
            if received < oldest or received > now + timedelta(days=1):
                raise BadRow(f"received {received:%d/%m/%Y} is outside the kept history ({retention_days} days)")
            due = _date(cell("due_at"), mapping, mapping.columns.get("due_at", "due_at"))
            resolved = _date(cell("resolved_at"), mapping, mapping.columns.get("resolved_at", "resolved_at"))
            refused = _date(cell("refused_at"), mapping, mapping.columns.get("refused_at", "refused_at"))
            for name, when in (("resolved_at", resolved), ("refused_at", refused)):
                if when is not None and when < received:
                    raise BadRow(f"{mapping.columns[name]} is before {mapping.columns['received_at']}")
            channel_text = fold(str(cell("channel") or ""))
            channel = mapping.channels.get(channel_text) if channel_text else None
            if channel_text and channel is None:
                raise BadRow(f"{mapping.columns['channel']}: {cell('channel')!r} is not one of "
                             f"{', '.join(mapping.channels)}")  # fmt: skip
        except BadRow as exc:
            report.bad.append((number, str(exc)))
            continue
        received_payload = {"event": "received", "channel": channel, "procedure_code": cell("procedure_code"),
                            "due_at": due.isoformat() if due else None, "source": "import"}  # fmt: skip
        events.append((received, dossier, unit, "received", received_payload))
        if resolved:
            events.append((resolved, dossier, unit, "resolved", {"event": "resolved", "source": "import"}))
        if refused:
            events.append((refused, dossier, unit, "refused", {"event": "refused", "source": "import"}))
        for flag, event in (("paid_online", "paid_online"), ("digitised", "digitised")):
            if fold(str(cell(flag) or "")) in mapping.yes:
                events.append((received, dossier, unit, event, {"event": event, "source": "import"}))
        report.kept += 1
    ensure_months(conn, {month_start(e[0]) for e in events})
    with conn.cursor() as cur:
        for at, dossier, unit, event, payload in events:
            cur.execute(
                "INSERT INTO dossier_events (time, dossier_id, unit_id, event, message_id, payload)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (at, dossier, unit, event, f"import:{event}", Jsonb(payload)),
            )
            report.events_added += cur.rowcount
    refresh(conn, {e[1] for e in events})
    return report
