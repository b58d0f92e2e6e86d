"""The periodic one-stop report leaders send up: ``ioc kpi report`` and ``GET /api/kpi/report``.

Laid out like the provincial template of the report on administrative procedures ("Tình hình, kết quả
giải quyết TTHC"): one row per unit, the district's own one-stop office first, then each commune, with
the subtotal of each level and the district's total; columns grouped as the template groups them
(received by channel and carried over; resolved early / on time / late; in progress, awaiting a
supplement, refused, withdrawn; digitised and paid online; rates), Vietnamese labels, then the
figures per procedure and the definitions (:mod:`ioc.kpi.definitions`) so the sheet explains itself.

The numbers are those of the API (the daily rollup for units; the dossiers for procedures), so the
spreadsheet and the wall never disagree.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import psycopg

from ioc.kpi.definitions import COMMON_RULES, DEFINITIONS
from ioc.kpi.figures import (
    LEVEL_TOTALS,
    compare,
    level_totals,
    local_period,
    online_level_kind,
    procedure_details,
    procedure_figures,
    ranking_group,
    unit_levels,
    with_rates,
)
from ioc.kpi.rollups import tile_figures

#: (key, column group, column label). ``total_received`` is received + carried over.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("total_received", "Số hồ sơ nhận giải quyết", "Tổng số"),
    ("carried_over", "Số hồ sơ nhận giải quyết", "Kỳ trước chuyển qua"),
    ("received", "Số hồ sơ nhận giải quyết", "Tiếp nhận trong kỳ"),
    ("received_online", "Số hồ sơ nhận giải quyết", "Trực tuyến"),
    ("received_direct", "Số hồ sơ nhận giải quyết", "Trực tiếp"),
    ("received_postal", "Số hồ sơ nhận giải quyết", "Bưu chính"),
    ("resolved", "Số hồ sơ đã giải quyết", "Tổng số"),
    ("resolved_early", "Số hồ sơ đã giải quyết", "Trước hạn"),
    ("resolved_on_time", "Số hồ sơ đã giải quyết", "Đúng hạn"),
    ("resolved_late", "Số hồ sơ đã giải quyết", "Quá hạn"),
    ("in_progress_at_end", "Số hồ sơ chưa giải quyết", "Đang giải quyết"),
    ("awaiting_supplement_at_end", "Số hồ sơ chưa giải quyết", "Chờ bổ sung"),
    ("open_overdue_at_end", "Số hồ sơ chưa giải quyết", "Trong đó quá hạn"),
    ("refused", "Từ chối, rút hồ sơ", "Từ chối"),
    ("withdrawn", "Từ chối, rút hồ sơ", "Rút hồ sơ"),
    ("digitised", "Số hóa, thanh toán", "Số hóa kết quả"),
    ("paid_online", "Số hóa, thanh toán", "Thanh toán trực tuyến"),
    ("on_time_rate", "Tỷ lệ (%)", "Đúng hạn"),
    ("online_rate", "Tỷ lệ (%)", "Trực tuyến"),
    ("digitised_rate", "Tỷ lệ (%)", "Số hóa kết quả"),
    ("paid_online_rate", "Tỷ lệ (%)", "Thanh toán trực tuyến"),
    ("satisfaction_rate", "Tỷ lệ (%)", "Hài lòng"),
)
NO_DATA = "chưa có dữ liệu"
TITLE = "BÁO CÁO TÌNH HÌNH, KẾT QUẢ GIẢI QUYẾT THỦ TỤC HÀNH CHÍNH"


def _row(label: str, figures: dict[str, Any], **extra: Any) -> dict[str, Any]:
    values = {key: figures.get(key) for key, _, _ in COLUMNS if key != "total_received"}
    values["total_received"] = figures["received"] + figures["carried_over"]
    return {"label": label, **extra, "values": values}


def build_report(
    conn: psycopg.Connection, first_day: date, last_day: date, unit_ids: list[str] | None = None
) -> dict[str, Any]:
    """The report as data: rows (units, level subtotals, total), procedures, definitions."""
    levels = unit_levels(conn)
    figures = tile_figures(conn, first_day, last_day, unit_ids)
    groups = {u: ranking_group(levels.get(u, ("", ""))[1]) for u in figures}
    ranked = compare(figures, {}, groups)
    totals = level_totals(figures, levels)

    def name(unit: str) -> str:
        return levels.get(unit, (unit, ""))[0]

    rows: list[dict[str, Any]] = []
    number = 0
    for group, total_key in (("office", "office"), ("commune", "communes")):
        members = sorted((u for u in ranked if groups[u] == group), key=lambda u: name(u))
        for unit in members:
            number += 1
            rows.append(_row(name(unit), ranked[unit], kind="unit", unit_id=unit, number=number,
                             level=levels.get(unit, ("", ""))[1], rank=ranked[unit]["rank"]))  # fmt: skip
        if members:
            rows.append(_row(f"Cộng: {LEVEL_TOTALS[total_key]}", totals[total_key], kind="level", level=total_key))
    rows.append(_row(LEVEL_TOTALS["district"], totals["district"], kind="total", level="district"))
    procedures = procedure_figures(conn, *local_period(first_day, last_day), unit_ids)
    details = procedure_details(conn, *local_period(first_day, last_day), unit_ids)
    kinds = [online_level_kind(details.get(code, {}).get("online_level")) for code in procedures]
    online = {
        "known": sum(1 for k in kinds if k is not None),
        "full": kinds.count("full"),
        "partial": kinds.count("partial"),
    }
    return {
        "title": TITLE,
        "from": first_day,
        "to": last_day,
        "columns": [{"key": k, "group": g, "label": label} for k, g, label in COLUMNS],
        "rows": rows,
        "procedures": [
            _row(
                code or "(không có mã)",
                f,
                kind="procedure",
                procedure_code=code,
                name=details.get(code, {}).get("name"),
                online_level=details.get(code, {}).get("online_level"),
            )
            for code, f in procedures.items()
        ],  # fmt: skip
        # Procedures offered online (toàn trình / một phần), when the source gives their level.
        "procedures_online": online if online["known"] else None,
        "totals": totals,
        "definitions": {k: {"label": v[0], "definition": v[2], "formula": v[3]} for k, v in DEFINITIONS.items()},
        "rules": COMMON_RULES,
        "no_data": NO_DATA,
    }


def _cell(value: Any) -> Any:
    return NO_DATA if value is None else value


def _period(report: dict[str, Any]) -> str:
    return f"Kỳ báo cáo: từ ngày {report['from']:%d/%m/%Y} đến ngày {report['to']:%d/%m/%Y}"


def to_csv(report: dict[str, Any]) -> bytes:
    """UTF-8 with BOM (Excel opens it with the diacritics right), one header row ``group: label``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["STT", "Đơn vị", "Xếp hạng", *(f"{c['group']}: {c['label']}" for c in report["columns"])])
    for row in report["rows"]:
        writer.writerow([row.get("number", ""), row["label"], row.get("rank") or "",
                         *(_cell(row["values"][c["key"]]) for c in report["columns"])])  # fmt: skip
    return out.getvalue().encode("utf-8-sig")


def to_markdown(report: dict[str, Any]) -> str:
    columns = report["columns"]
    lines = [f"# {report['title']}", "", _period(report), ""]
    lines.append("| STT | Đơn vị | Xếp hạng | " + " | ".join(f"{c['group']}: {c['label']}" for c in columns) + " |")
    lines.append("|" + "---|" * (len(columns) + 3))
    for row in report["rows"]:
        label = row["label"] if row["kind"] == "unit" else f"**{row['label']}**"
        cells = [str(row.get("number", "")), label, str(row.get("rank") or "")]
        lines.append("| " + " | ".join(cells + [str(_cell(row["values"][c["key"]])) for c in columns]) + " |")
    if report["procedures"]:
        lines += ["", "## Theo thủ tục", ""]
        lines += ["| Mã thủ tục | Tên thủ tục | Mức độ | Tiếp nhận | Đã giải quyết | Đúng hạn (%) | Trực tuyến (%) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in report["procedures"]:
            v = row["values"]
            lines.append(f"| {row['label']} | {row.get('name') or ''} | {row.get('online_level') or ''} | "
                         f"{v['received']} | {v['resolved']} | {_cell(v['on_time_rate'])} | "
                         f"{_cell(v['online_rate'])} |")  # fmt: skip
        if report["procedures_online"]:
            o = report["procedures_online"]
            lines += ["", f"Thủ tục cung cấp trực tuyến: toàn trình {o['full']}, một phần {o['partial']} "
                          f"(trên {o['known']} thủ tục có thông tin mức độ)."]  # fmt: skip
    lines += ["", "## Cách tính", ""]
    lines += [f"- **{d['label']}**: {d['definition']} `{d['formula']}`" for d in report["definitions"].values()]
    lines += ["", report["rules"], ""]
    return "\n".join(lines)


def to_xlsx(report: dict[str, Any]) -> bytes:
    """Sheet "Báo cáo": title, period, two header rows (merged groups), units, subtotals, total;
    sheet "Theo thủ tục"; sheet "Cách tính" (definitions and formulas)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    sheet = book.active
    sheet.title = "Báo cáo"
    columns = report["columns"]
    width = len(columns) + 3
    sheet.cell(1, 1, report["title"]).font = Font(bold=True)
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=width)
    sheet.cell(2, 1, _period(report))
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=width)
    for col, label in enumerate(("STT", "Đơn vị", "Xếp hạng"), start=1):
        sheet.cell(4, col, label)
        sheet.merge_cells(start_row=4, start_column=col, end_row=5, end_column=col)
    col = 4
    while col - 4 < len(columns):
        group = columns[col - 4]["group"]
        span = 1
        while col - 4 + span < len(columns) and columns[col - 4 + span]["group"] == group:
            span += 1
        sheet.cell(4, col, group)
        if span > 1:
            sheet.merge_cells(start_row=4, start_column=col, end_row=4, end_column=col + span - 1)
        for offset in range(span):
            sheet.cell(5, col + offset, columns[col - 4 + offset]["label"])
        col += span
    for row_cells in sheet.iter_rows(min_row=4, max_row=5):
        for cell in row_cells:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for index, row in enumerate(report["rows"], start=6):
        sheet.cell(index, 1, row.get("number"))
        sheet.cell(index, 2, row["label"]).font = Font(bold=row["kind"] != "unit")
        sheet.cell(index, 3, row.get("rank"))
        for offset, column in enumerate(columns):
            sheet.cell(index, 4 + offset, _cell(row["values"][column["key"]]))
    sheet.column_dimensions["B"].width = 40
    for offset in range(len(columns)):
        sheet.column_dimensions[get_column_letter(4 + offset)].width = 12
    sheet.freeze_panes = "D6"

    procedures = book.create_sheet("Theo thủ tục")
    procedures.append(["Mã thủ tục", "Tên thủ tục", "Mức độ", *(f"{c['group']}: {c['label']}" for c in columns)])
    for row in report["procedures"]:
        procedures.append([row["label"], row.get("name"), row.get("online_level"),
                           *(_cell(row["values"][c["key"]]) for c in columns)])  # fmt: skip
    if report["procedures_online"]:
        o = report["procedures_online"]
        procedures.append([])
        procedures.append([f"Thủ tục cung cấp trực tuyến: toàn trình {o['full']}, một phần {o['partial']} "
                           f"(trên {o['known']} thủ tục có thông tin mức độ)"])  # fmt: skip
    explained = book.create_sheet("Cách tính")
    explained.append(["Chỉ tiêu", "Định nghĩa", "Công thức"])
    for definition in report["definitions"].values():
        explained.append([definition["label"], definition["definition"], definition["formula"]])
    explained.append([])
    explained.append([report["rules"]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def render(report: dict[str, Any], fmt: str) -> tuple[bytes, str]:
    """(body, media type) for ``xlsx``, ``csv`` or ``md``."""
    if fmt == "xlsx":
        return to_xlsx(report), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if fmt == "csv":
        return to_csv(report), "text/csv; charset=utf-8"
    if fmt == "md":
        return to_markdown(report).encode("utf-8"), "text/markdown; charset=utf-8"
    raise ValueError(f"unknown format {fmt!r}; one of: xlsx, csv, md")


__all__ = ["COLUMNS", "build_report", "render", "to_csv", "to_markdown", "to_xlsx", "with_rates"]
