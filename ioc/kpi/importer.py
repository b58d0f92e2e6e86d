"""Import dossiers from a spreadsheet exported by the one-stop system (CSV or XLSX).

Each good row becomes the lifecycle events it implies (received; resolved or refused; paid online;
digitised), stored like events from MQTT with ``ON CONFLICT DO NOTHING`` on (dossier, event,
time): importing the same sheet twice changes nothing, and a sheet overlapping MQTT events does not
double them. Bad rows are reported with their row number (the header is row 1) and the reason;
good rows are kept. Columns are named in a mapping file (``config/dossier-import.yaml``), so a
differently laid-out export needs a new mapping, not new code.

Real exports are taken as they come (docs/kpi.md, "Imports"): the unit by its id, code, name or agency
name (:mod:`ioc.district.aliases`); a status column; dates with or without a time; refusals without a
date; optional columns missing. Whatever the sheet does not say and the import had to assume is
counted and listed in :attr:`ImportReport.assumptions`, and rows whose date was assumed are flagged.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.types.json import Jsonb

from ioc.clock import LOCAL_TZ
from ioc.district.aliases import UnitResolver, UnknownUnit
from ioc.kpi.dossiers import refresh
from ioc.storage.timeseries import ensure_months, month_start
from ioc.text import fold

RETENTION_SETTING = "IOC_DOSSIER_RETENTION_DAYS"
_END_OF_DAY = time(23, 59, 59)


@dataclass
class ImportReport:
    rows: int = 0
    kept: int = 0
    events_added: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    #: rows kept with an assumed value: (row number, what was assumed)
    flagged: list[tuple[int, str]] = field(default_factory=list)
    #: every assumption the import made, with how many rows it touched
    assumptions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Mapping:
    columns: dict[str, list[str]]
    channels: dict[str, str]
    yes: set[str]
    date_formats: list[str]
    statuses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return cls(
            columns={k: [v] if isinstance(v, str) else list(v) for k, v in data["columns"].items()},
            channels={fold(k): v for k, v in data.get("channels", {}).items()},
            yes={fold(str(v)) for v in data.get("true_values", [])},
            date_formats=list(data.get("date_formats", [])),
            statuses={fold(k): v for k, v in (data.get("statuses") or {}).items()},
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


def _date(value: Any, mapping: Mapping, name: str) -> tuple[datetime | None, bool]:
    """(the local instant, whether the cell had a time of day). A date alone is 00:00 local here;
    callers decide what a date alone means for their column."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, False
    if isinstance(value, datetime):
        has_time = value.time() != time(0, 0)
        return (value if value.tzinfo else value.replace(tzinfo=LOCAL_TZ)), has_time
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=LOCAL_TZ), False
    text = str(value).strip()
    for fmt in mapping.date_formats:
        try:
            parsed = datetime.strptime(text, fmt).replace(tzinfo=LOCAL_TZ)
        except ValueError:
            continue
        return parsed, any(code in fmt for code in ("%H", "%M"))
    try:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)), "T" in text or ":" in text
    except ValueError:
        raise BadRow(f"{name}: {text!r} is not a date ({', '.join(mapping.date_formats)})") from None


class _Tally:
    """Counts of each assumption, for the summary."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, text: str) -> None:
        self.counts[text] = self.counts.get(text, 0) + 1


def import_dossiers(conn: psycopg.Connection, data: bytes, filename: str, mapping: Mapping, *,
                    now: datetime, retention_days: int | None = None) -> ImportReport:  # fmt: skip
    """Import the sheet in ``conn``'s transaction. ``retention_days``: the dossier events' retention
    (``IOC_DOSSIER_RETENTION_DAYS``; None keeps them for ever): older rows are refused, naming it."""
    table = _rows(data, filename)
    report = ImportReport()
    if not table:
        return report
    header = [fold(str(h or "")) for h in table[0]]
    where: dict[str, int] = {}
    label: dict[str, str] = {}
    for name, candidates in mapping.columns.items():
        for column in candidates:
            if fold(column) in header:
                where[name], label[name] = header.index(fold(column)), column
                break
        label.setdefault(name, candidates[0])
    missing = [" / ".join(mapping.columns[n]) for n in ("dossier_id", "unit_id", "received_at") if n not in where]
    if missing:
        report.bad.append((1, f"missing columns: {', '.join(missing)}"))
        return report
    resolver = UnitResolver.from_database(conn)
    oldest = now - timedelta(days=retention_days) if retention_days else None
    tally = _Tally()
    unknown = [flag for flag in ("paid_online", "digitised") if flag not in where]
    for flag in unknown:
        report.assumptions.append(f"column {label[flag]!r} absent: {flag} is unknown (no data, shown as null), not 0")
    if "status" not in where:
        report.assumptions.append(f"column {label['status']!r} absent: each dossier's state comes from its dates")
    events: list[tuple] = []
    for number, raw in enumerate(table[1:], start=2):
        if not any(v not in (None, "") for v in raw):
            continue
        report.rows += 1

        def cell(name: str, raw: list[Any] = raw) -> Any:
            index = where.get(name)
            return raw[index] if index is not None and index < len(raw) else None

        try:
            row_events, notes = _row_events(cell, label, mapping, resolver, now, oldest, retention_days, tally)
        except BadRow as exc:
            report.bad.append((number, str(exc)))
            continue
        for event in row_events:
            if event[3] == "received" and unknown:
                event[4]["unknown"] = unknown
        events += row_events
        report.flagged += [(number, note) for note in notes]
        report.kept += 1
    report.assumptions += [f"{text}: {n} row(s)" for text, n in tally.counts.items()]
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


def _row_events(cell: Any, label: dict[str, str], mapping: Mapping, resolver: UnitResolver, now: datetime,
                oldest: datetime | None, retention_days: int | None,
                tally: _Tally) -> tuple[list[tuple], list[str]]:  # fmt: skip
    """The events one row implies, and the notes of what was assumed for it; :class:`BadRow` otherwise."""
    dossier = str(cell("dossier_id") or "").strip()
    if not dossier:
        raise BadRow(f"{label['dossier_id']} is empty")
    unit_text = str(cell("unit_id") or "").strip()
    try:
        unit = resolver.resolve(unit_text)
    except UnknownUnit as exc:
        raise BadRow(f"unit: {exc} (not a known unit id, code, name or alias)") from None
    if unit != unit_text:
        tally.add("units named by code, name or alias (resolved to their id)")
    received, received_time = _date(cell("received_at"), mapping, label["received_at"])
    if received is None:
        raise BadRow(f"{label['received_at']} is empty")
    if not received_time:
        tally.add(f"{label['received_at']} without a time: received at 00:00 that day (+07:00)")
    if oldest is not None and received < oldest:
        raise BadRow(f"received {received:%d/%m/%Y} is older than the dossier history kept ({retention_days} days, "
                     f"{RETENTION_SETTING}); raise or unset {RETENTION_SETTING} to import it")  # fmt: skip
    if received > now + timedelta(days=1):
        raise BadRow(f"received {received:%d/%m/%Y} is in the future")
    due, due_time = _date(cell("due_at"), mapping, label["due_at"])
    if due is not None and not due_time:
        due = datetime.combine(due.date(), _END_OF_DAY, tzinfo=LOCAL_TZ)
        tally.add(f"{label['due_at']} without a time: due at the end of that day (23:59:59 +07:00)")

    def final(name: str) -> datetime | None:
        """A final date; a date alone is at the receipt when on the day of receipt, else 00:00."""
        when, has_time = _date(cell(name), mapping, label[name])
        if when is None:
            return None
        if not has_time:
            tally.add(f"{label[name]} without a time: at 00:00 that day, or at the receipt on the day of receipt")
            if when.date() == received.astimezone(LOCAL_TZ).date():
                when = max(when, received)  # a result on the day of receipt, dated without a time
        if when < received:
            raise BadRow(f"{label[name]} is before {label['received_at']}")
        return when

    resolved, refused, withdrawn = final("resolved_at"), final("refused_at"), final("withdrawn_at")
    awaiting = final("supplement_requested_at")
    channel_text = fold(str(cell("channel") or ""))
    channel = mapping.channels.get(channel_text) if channel_text else None
    if channel_text and channel is None:
        raise BadRow(f"{label['channel']}: {cell('channel')!r} is not one of {', '.join(mapping.channels)}")
    status_text = fold(str(cell("status") or ""))
    status = mapping.statuses.get(status_text) if status_text else None
    if status_text and status is None:
        raise BadRow(f"{label['status']}: {cell('status')!r} is not one of {', '.join(mapping.statuses)}")
    notes: list[str] = []
    if status is None:  # no status: the dates say it
        status = "resolved" if resolved else "refused" if refused else "withdrawn" if withdrawn else "in_progress"
    if status == "resolved" and resolved is None:
        raise BadRow(f"{label['status']} says resolved but {label['resolved_at']} is empty")
    if status in ("in_progress", "awaiting_supplement") and (resolved or refused or withdrawn):
        raise BadRow(f"{label['status']} says the dossier is open but it has a final date")
    date_assumed = False
    if status == "refused" and refused is None:
        # Some exports put the refusal's date in the result column; otherwise none is given.
        refused = resolved
        if refused is None:
            refused, date_assumed = received, True
            tally.add("refusals without a date: counted on their day of receipt, flagged (date_assumed)")
            notes.append("refused without a date: counted on its day of receipt")
        resolved = None
    if status == "withdrawn" and withdrawn is None:
        withdrawn = resolved
        if withdrawn is None:
            withdrawn, date_assumed = received, True
            tally.add("withdrawals without a date: counted on their day of receipt, flagged (date_assumed)")
            notes.append("withdrawn without a date: counted on its day of receipt")
        resolved = None
    if status == "awaiting_supplement" and awaiting is None:
        awaiting = received
        tally.add("awaiting a supplement without a request date: waiting since the receipt")
    source = {"source": "import"}
    code = cell("procedure_code")
    received_payload = {"event": "received", "channel": channel,
                        "procedure_code": str(code).strip() if code not in (None, "") else None,
                        "due_at": due.isoformat() if due else None, **source}  # fmt: skip
    for extra in ("procedure_name", "online_level"):
        if cell(extra) not in (None, ""):
            received_payload[extra] = str(cell(extra)).strip()
    events: list[tuple] = [(received, dossier, unit, "received", received_payload)]
    if status == "resolved":
        events.append((resolved, dossier, unit, "resolved", {"event": "resolved", **source}))
    elif status in ("refused", "withdrawn"):
        when = refused if status == "refused" else withdrawn
        payload = {"event": status, **source, **({"date_assumed": True} if date_assumed else {})}
        events.append((when, dossier, unit, status, payload))
    elif status == "awaiting_supplement":
        events.append((awaiting, dossier, unit, "supplement_requested", {"event": "supplement_requested", **source}))
    for flag in ("paid_online", "digitised"):
        if fold(str(cell(flag) or "")) in mapping.yes:
            events.append((received, dossier, unit, flag, {"event": flag, **source}))
    return events, notes
