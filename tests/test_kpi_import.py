"""Dossier spreadsheets: bad rows reported with their number and reason, good rows kept, a second
import changes nothing; CSV and XLSX."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from openpyxl import Workbook

from ioc.kpi.importer import Mapping, import_dossiers

ROOT = Path(__file__).resolve().parent.parent
MAPPING = Mapping.load(ROOT / "config" / "dossier-import.yaml")
HEADER = ["Số hồ sơ", "Mã đơn vị", "Mã thủ tục", "Hình thức nộp", "Ngày tiếp nhận", "Hạn xử lý", "Ngày có kết quả",
          "Ngày từ chối", "Thanh toán trực tuyến", "Số hóa"]  # fmt: skip


def _sheet_rows(now: datetime) -> tuple[list[list[str]], dict[int, str]]:
    day = (now - timedelta(days=20)).strftime("%d/%m/%Y")
    due = (now - timedelta(days=10)).strftime("%d/%m/%Y")
    done = (now - timedelta(days=12)).strftime("%d/%m/%Y 15:30")
    rows = []
    for i in range(1000):
        channel = ("Trực tiếp", "Trực tuyến", "Bưu chính")[i % 3]
        rows.append([f"IMP-{i:04d}", "imp-xa", "1.001757", channel, f"{day} 08:{i % 60:02d}", due,
                     done if i % 2 else "", "", "Có" if i % 5 == 0 else "", "x" if i % 7 == 0 else ""])  # fmt: skip
    bad = {
        12: ("", "missing id", "is empty"),
        140: ("imp-khong-co", "unknown unit", "not a known unit"),
        333: ("date", "bad date", "is not a date"),
        512: ("before", "resolved before received", "is before"),
        901: ("channel", "unknown channel", "is not one of"),
    }
    reasons = {}
    for index, (kind, _, reason) in bad.items():
        row = rows[index]
        if kind == "":
            row[0] = ""
        elif kind == "date":
            row[4] = "31/02/2026 xx"
        elif kind == "before":
            row[6] = (now - timedelta(days=30)).strftime("%d/%m/%Y")
        elif kind == "channel":
            row[3] = "Fax"
        else:
            row[1] = kind
        reasons[index + 2] = reason  # the header is row 1
    return rows, reasons


def test_csv_with_five_bad_rows_keeps_995_and_a_second_import_changes_nothing(db: psycopg.Connection) -> None:
    db.execute("INSERT INTO units (id, name, name_search, level) VALUES ('imp-xa', 'Xã nhập', 'xa nhap', 'commune')"
               " ON CONFLICT DO NOTHING")  # fmt: skip
    now = datetime.now(UTC)
    rows, reasons = _sheet_rows(now)
    text = io.StringIO()
    text.write(";".join(HEADER) + "\n")
    for row in rows:
        text.write(";".join(row) + "\n")
    data = text.getvalue().encode("utf-8-sig")
    first = import_dossiers(db, data, "ho-so.csv", MAPPING, now=now)
    assert (first.rows, first.kept) == (1000, 995)
    assert [n for n, _ in first.bad] == sorted(reasons)
    for number, reason in first.bad:
        assert reasons[number] in reason, (number, reason)
    dossiers = db.execute("SELECT count(*), count(*) FILTER (WHERE status = 'resolved') FROM dossiers"
                          " WHERE unit_id = 'imp-xa'").fetchone()  # fmt: skip
    assert dossiers[0] == 995 and dossiers[1] > 450
    paid = db.execute("SELECT count(*) FROM dossiers WHERE unit_id = 'imp-xa' AND paid_online").fetchone()[0]
    assert paid == 199  # every fifth row, less row 140 (bad)
    second = import_dossiers(db, data, "ho-so.csv", MAPPING, now=now)
    assert second.kept == 995 and second.events_added == 0
    assert db.execute("SELECT count(*) FROM dossiers WHERE unit_id = 'imp-xa'").fetchone()[0] == 995


def test_xlsx_with_real_dates_imports_the_same_way(db: psycopg.Connection) -> None:
    db.execute("INSERT INTO units (id, name, name_search, level) VALUES ('imp-xa', 'Xã nhập', 'xa nhap', 'commune')"
               " ON CONFLICT DO NOTHING")  # fmt: skip
    now = datetime.now(UTC)
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    received = (now - timedelta(days=5)).replace(tzinfo=None, microsecond=0)
    sheet.append(["XL-1", "imp-xa", "2.000908", "Trực tuyến", received, received + timedelta(days=3),
                  received + timedelta(days=1), None, "Có", "Không"])  # fmt: skip
    sheet.append(["XL-2", "imp-xa", "2.000908", "trực tiếp", received, received + timedelta(days=3), None,
                  received + timedelta(days=2), None, None])  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    report = import_dossiers(db, out.getvalue(), "ho-so.xlsx", MAPPING, now=now)
    assert (report.kept, report.bad) == (2, [])
    states = dict(db.execute("SELECT id, status FROM dossiers WHERE id IN ('XL-1', 'XL-2')").fetchall())
    assert states == {"XL-1": "resolved", "XL-2": "refused"}
    assert db.execute("SELECT paid_online, digitised, channel FROM dossiers WHERE id = 'XL-1'").fetchone() == (
        True, False, "online",
    )  # fmt: skip


def test_rows_older_than_the_dossier_retention_are_refused_naming_the_setting(db: psycopg.Connection) -> None:
    db.execute("INSERT INTO units (id, name, name_search, level) VALUES ('imp-xa', 'Xã nhập', 'xa nhap', 'commune')"
               " ON CONFLICT DO NOTHING")  # fmt: skip
    now = datetime.now(UTC)
    old = (now - timedelta(days=3 * 365)).strftime("%d/%m/%Y")
    recent = (now - timedelta(days=3)).strftime("%d/%m/%Y")
    data = (f"Số hồ sơ;Mã đơn vị;Ngày tiếp nhận\nOLD-1;imp-xa;{old}\nNEW-1;imp-xa;{recent}\n").encode()
    kept_for_a_year = import_dossiers(db, data, "cu.csv", MAPPING, now=now, retention_days=365)
    assert kept_for_a_year.kept == 1
    [(number, reason)] = kept_for_a_year.bad
    assert number == 2 and "IOC_DOSSIER_RETENTION_DAYS" in reason and "365 days" in reason
    # Unset (the default): the history is kept, the old row is imported.
    kept_for_ever = import_dossiers(db, data, "cu.csv", MAPPING, now=now, retention_days=None)
    assert (kept_for_ever.kept, kept_for_ever.bad) == (2, [])
