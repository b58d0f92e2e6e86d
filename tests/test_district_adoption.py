"""A second district adopts the product without code: Nam Trà My, not the sample (issue #20).

Built with the commands a district's staff run, nothing else: ``ioc district init`` from a boundary
file shaped like an OpenStreetMap export (10 communes with shared edges, their official codes, and two
communes whose names differ only by a diacritic: Trà Dơn and Trà Don), the skeleton filled in with two
users as the staff would, ``ioc district apply``, ``ioc kpi import`` of a sheet in the Vietnamese
layout of a one-stop export (agency names, date-only columns, a status column, refusals without a
date, no payment column). The October figures of 330 dossiers over two levels were worked out by hand
(comments below) and are read back through the API and through the XLSX report (openpyxl).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from staff import app_settings
from test_auth_support import fast_hashing
from typer.testing import CliRunner

from ioc.cli.main import app as cli
from ioc.http.app import create_app
from ioc.settings import get_settings

DATA = Path(__file__).parent / "data"
PASSWORD = "mật khẩu lãnh đạo 2026"
OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}
OFFICE = "Bộ phận một cửa huyện Nam Trà My"
HEADER = ["STT", "Số hồ sơ", "Tên thủ tục", "Mã thủ tục", "Mức độ", "Đơn vị tiếp nhận", "Hình thức nộp",
          "Ngày tiếp nhận", "Ngày hẹn trả", "Ngày trả kết quả", "Ngày yêu cầu bổ sung", "Trạng thái",
          "Số hóa kết quả"]  # fmt: skip

# (prefix, n, unit as the sheet names it, channel, received, due, result, supplement asked, status, digitised)
# fmt: off
GROUPS = [
    # District office (level district), 100 dossiers in October.
    ("O1", 30, OFFICE, "Trực tuyến", "05/10/2026", "15/10/2026", "10/10/2026", "", "Đã trả kết quả", "Có"),  # early
    ("O1b", 10, OFFICE, "Trực tuyến", "05/10/2026", "15/10/2026", "10/10/2026", "", "Đã trả kết quả", ""),  # early
    ("O2", 20, OFFICE, "Trực tiếp", "06/10/2026", "15/10/2026", "15/10/2026", "", "Đã trả kết quả", "x"),  # due day
    ("O3", 10, OFFICE, "Trực tiếp", "06/10/2026", "15/10/2026", "16/10/2026", "", "Đã trả kết quả", ""),  # late
    ("O4", 10, OFFICE, "Trực tiếp", "20/10/2026", "30/10/2026", "", "", "Chờ bổ sung", ""),  # awaiting, overdue
    ("O5", 10, OFFICE, "Trực tuyến", "21/10/2026", "05/11/2026", "", "", "Đang giải quyết", ""),  # in progress
    ("O6", 5, OFFICE, "Trực tiếp", "22/10/2026", "", "", "", "Từ chối", ""),  # refused, no date: flagged
    # Received at 14:30, result dated the same day without a time: accepted, on time.
    ("O7", 5, OFFICE, "Trực tiếp", "23/10/2026 14:30", "23/10/2026", "23/10/2026", "", "Đã trả kết quả", ""),
    # Communes (level commune), named as agencies, by code, or with the diacritic that tells them apart.
    ("L1", 30, "UBND xã Trà Leng", "Trực tiếp", "01/10/2026", "08/10/2026", "07/10/2026", "", "Đã giải quyết", "x"),
    ("L2", 30, "UBND xã Trà Leng", "Trực tuyến", "02/10/2026", "09/10/2026", "12/10/2026", "", "Đã giải quyết", ""),
    ("D1", 20, "UBND xã Trà Dơn", "Trực tiếp", "03/10/2026", "10/10/2026", "10/10/2026", "", "Đã giải quyết", ""),
    ("D2", 20, "UBND xã Trà Dơn", "Trực tiếp", "03/10/2026", "10/10/2026", "11/10/2026", "", "Đã giải quyết", ""),
    ("N1", 45, "UBND xã Trà Don", "Trực tiếp", "04/10/2026", "14/10/2026", "13/10/2026", "", "Đã giải quyết", ""),
    ("N2", 5, "UBND xã Trà Don", "Trực tiếp", "04/10/2026", "14/10/2026", "", "", "Từ chối", ""),  # no date
    ("M1", 30, "20944", "Trực tiếp", "31/10/2026", "07/11/2026", "", "", "Đang giải quyết", ""),  # Trà Mai by code
    ("M2", 20, "20944", "Trực tiếp", "25/09/2026", "02/10/2026", "02/10/2026", "", "Đã giải quyết", ""),  # carried
    ("M3", 10, "Xã Trà Mai", "Trực tiếp", "30/09/2026", "10/10/2026", "", "01/10/2026", "Chờ bổ sung", ""),
    # Three years ago: older than the events' retention (730 days), kept with the dossier history.
    ("H1", 20, "UBND xã Trà Leng", "Trực tiếp", "10/03/2023", "20/03/2023", "15/03/2023", "", "Đã giải quyết", ""),
]
# fmt: on
TOTAL = sum(g[1] for g in GROUPS)

# October, by hand. Office: received 100 (online O1 40 + O5 10 = 50, direct 50); resolved O1 40 + O2 20 + O3 10
# + O7 5 = 75: early 40, on time O2 20 (date-only due ends that day) + O7 5 (same-day result) = 25, late 10;
# on time 65/75 = 86.67 -> 86.7; awaiting O4 10, in progress O5 10, open 20, overdue O4 10 (due 30/10);
# refused O6 5; digitised among resolved O1 30 + O2 20 = 50/75 = 66.7; no payment column: no data.
OFFICE_OCT = {"received": 100, "received_online": 50, "received_direct": 50, "carried_over": 0, "resolved": 75,
              "resolved_early": 40, "resolved_on_time": 25, "resolved_late": 10, "awaiting_supplement_at_end": 10,
              "in_progress_at_end": 10, "open_at_end": 20, "open_overdue_at_end": 10, "refused": 5, "digitised": 50,
              "on_time_rate": 86.7, "digitised_rate": 66.7, "online_rate": 50.0, "paid_online_rate": None}  # fmt: skip
# Communes: received L 60 + D 40 + N 50 + M1 30 = 180 (online L2 30: 16.7 %); carried over M2 20 + M3 10 = 30;
# resolved L 60 + D 40 + N1 45 + M2 20 = 165: early L1 30 + N1 45 = 75, on time D1 20 + M2 20 = 40, late L2 30 +
# D2 20 = 50; on time 115/165 = 69.70 -> 69.7; refused N2 5; awaiting M3 10 (overdue: due 10/10), in progress
# M1 30; digitised L1 30/165 = 18.18 -> 18.2.
COMMUNES_OCT = {"received": 180, "received_online": 30, "carried_over": 30, "resolved": 165, "resolved_early": 75,
                "resolved_on_time": 40, "resolved_late": 50, "refused": 5, "awaiting_supplement_at_end": 10,
                "in_progress_at_end": 30, "open_at_end": 40, "open_overdue_at_end": 10, "digitised": 30,
                "on_time_rate": 69.7, "digitised_rate": 18.2, "online_rate": 16.7,
                "paid_online_rate": None}  # fmt: skip
# District: received 280, carried over 30, resolved 240 (early 115, on time 65, late 60): 180/240 = 75.0;
# awaiting 20, in progress 40; refused 10; digitised 80/240 = 33.3; online 80/280 = 28.57 -> 28.6.
DISTRICT_OCT = {"received": 280, "carried_over": 30, "resolved": 240, "resolved_early": 115, "resolved_on_time": 65,
                "resolved_late": 60, "awaiting_supplement_at_end": 20, "in_progress_at_end": 40, "refused": 10,
                "digitised": 80, "on_time_rate": 75.0, "digitised_rate": 33.3, "online_rate": 28.6,
                "paid_online_rate": None}  # fmt: skip
# Ranks by on-time rate, communes apart from the office, ties equal: Trà Don 45/45 and Trà Mai 20/20 = 100.0
# share rank 1; Trà Leng 30/60 and Trà Dơn 20/40 = 50.0 share rank 3; the office is 1 among offices.
RANKS = {"tra-don-20956": 1, "tra-mai": 1, "tra-leng": 3, "tra-don-20938": 3, "nam-tra-my": 1}


def _sheet() -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    number = 0
    for prefix, n, unit, channel, received, due, result, asked, status, digitised in GROUPS:
        for i in range(n):
            number += 1
            code = "1.004227" if unit == OFFICE else "2.000908"
            name = "Đăng ký khai sinh" if unit == OFFICE else "Chứng thực bản sao từ bản chính"
            level = "Toàn trình" if unit == OFFICE else "Một phần"
            sheet.append([number, f"NTM-{prefix}-{i:03d}", name, code, level, unit, channel, received, due, result,
                          asked, status, digitised])  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def district(
    database_factory: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    url = database_factory(migrated=False)
    home = tmp_path_factory.mktemp("ntm")
    patch = pytest.MonkeyPatch()
    patch.setenv("IOC_DATABASE_URL", url)
    patch.setenv("IOC_VAR_DIR", str(home / "var"))
    patch.setenv("NTM_LEADER_PASSWORD", PASSWORD)
    patch.setenv("NTM_OFFICER_PASSWORD", PASSWORD)
    patch.delenv("IOC_DOSSIER_RETENTION_DAYS", raising=False)
    get_settings.cache_clear()
    try:
        yield url, home
    finally:
        patch.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def adopted(district: tuple[str, Path]) -> tuple[str, Path, str]:
    url, home = district
    config = home / "nam-tra-my.yaml"
    out = _run("district", "init", "--boundaries", str(DATA / "nam-tra-my-communes.geojson"),
               "--district-name", "Nam Trà My", "--out", str(config))  # fmt: skip
    assert "11 units (10 with a code)" in out and "tra-don-20938" in out
    # The district's staff fill in the skeleton: two accounts (passwords from the environment).
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["users"] = [
        {"username": "lanh-dao", "display_name": "Lãnh đạo huyện", "role": "leader",
         "password_env": "NTM_LEADER_PASSWORD"},
        {"username": "can-bo-tra-leng", "display_name": "Cán bộ xã Trà Leng", "role": "commune_officer",
         "unit": "tra-leng", "password_env": "NTM_OFFICER_PASSWORD"},
    ]  # fmt: skip
    config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    _run("config", "check", str(config))
    with fast_hashing():
        dry = _run("district", "apply", str(config), "--dry-run")
        assert "+ unit tra-leng" in dry and "dry run: nothing written" in dry
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM units").fetchone()[0] == 0
        applied = _run("district", "apply", str(config))
        assert "+ unit tra-don-20956" in applied and "+ user lanh-dao" in applied
        again = _run("district", "apply", str(config))
        assert "0 rows changed" in again  # idempotent
    sheet = home / "ho-so-mot-cua-2026.xlsx"
    sheet.write_bytes(_sheet())
    imported = _run("kpi", "import", str(sheet))
    return url, home, imported


def test_the_import_lists_every_assumption_and_flags_undated_refusals(adopted) -> None:
    url, _, output = adopted
    assert f"{TOTAL} rows: {TOTAL} kept (10 flagged), 0 bad" in output
    assert "'Thanh toán trực tuyến' absent: paid_online is unknown" in output
    assert "refusals without a date: counted on their day of receipt, flagged (date_assumed): 10 row(s)" in output
    assert "Ngày hẹn trả without a time: due at the end of that day" in output
    assert re.search(r"units named by code, name or alias \(resolved to their id\): 330 row\(s\)", output)
    with psycopg.connect(url) as conn:
        units = dict(conn.execute("SELECT dossier_id, unit_id FROM dossier_events WHERE event = 'received'"
                                  " AND dossier_id IN ('NTM-D1-000', 'NTM-N1-000', 'NTM-M1-000',"
                                  " 'NTM-O1-000')"))  # fmt: skip
        assert units == {"NTM-D1-000": "tra-don-20938", "NTM-N1-000": "tra-don-20956", "NTM-M1-000": "tra-mai",
                         "NTM-O1-000": "nam-tra-my"}  # fmt: skip
        assert conn.execute("SELECT count(*) FROM dossiers WHERE paid_online IS NULL").fetchone()[0] == TOTAL


def _leader(client: TestClient) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"username": "lanh-dao", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
def client(adopted, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = adopted[0]
    settings = app_settings(url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_hand_computed_october_figures_through_the_api(client: TestClient) -> None:
    headers = _leader(client)
    response = client.get("/api/kpi/dossiers", params=OCTOBER, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    office, communes, whole = body["levels"]["office"], body["levels"]["communes"], body["levels"]["district"]
    assert {k: office[k] for k in OFFICE_OCT} == OFFICE_OCT
    assert {k: communes[k] for k in COMMUNES_OCT} == COMMUNES_OCT
    assert {k: whole[k] for k in DISTRICT_OCT} == DISTRICT_OCT
    assert {u: f["rank"] for u, f in body["units"].items()} == RANKS
    assert body["units"]["nam-tra-my"]["rank_group"] == "office"
    assert body["definitions"]["digitised_rate"]["formula"] == "digitised / digitised_known x 100"
    assert body["definitions"]["digitised_rate"]["label"] == "Tỷ lệ số hóa kết quả (%)"
    # The commune officer of Trà Leng sees Trà Leng only, and may name it by its agency name.
    officer = client.post("/api/auth/login", json={"username": "can-bo-tra-leng", "password": PASSWORD}).json()
    mine = {"Authorization": f"Bearer {officer['access_token']}"}
    assert set(client.get("/api/kpi/dossiers", params=OCTOBER, headers=mine).json()["units"]) == {"tra-leng"}
    named = client.get("/api/kpi/dossiers", params={**OCTOBER, "unit": "UBND xã Trà Leng"}, headers=mine)
    assert named.status_code == 200 and named.json()["units"]["tra-leng"]["received"] == 60
    assert client.get("/api/kpi/dossiers", params={**OCTOBER, "unit": "20944"}, headers=mine).status_code == 403


def test_refusals_without_a_date_are_flagged_in_the_drill_down_in_local_time(client: TestClient) -> None:
    headers = _leader(client)
    listed = client.get("/api/kpi/dossiers/list", params={**OCTOBER, "figure": "refused"}, headers=headers).json()
    assert listed["total"] == 10 and all(d["date_assumed"] for d in listed["items"])
    assert all(d["received_at"].endswith("+07:00") for d in listed["items"])
    same_day = client.get("/api/kpi/dossiers/list", params={**OCTOBER, "figure": "resolved_on_time",
                                                              "unit": "nam-tra-my"},
                          headers=headers).json()  # fmt: skip
    assert same_day["total"] == 25
    o7 = [d for d in same_day["items"] if d["id"].startswith("NTM-O7")]
    assert len(o7) == 5 and o7[0]["resolved_at"] == "2026-10-23T14:30:00+07:00"
    assert o7[0]["due_at"] == "2026-10-23T23:59:59+07:00"


def test_the_xlsx_report_read_back_has_the_hand_computed_figures(client: TestClient) -> None:
    headers = _leader(client)
    response = client.get("/api/kpi/report", params={**OCTOBER, "format": "xlsx"}, headers=headers)
    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content))["Báo cáo"]
    rows = list(sheet.iter_rows(values_only=True))
    groups, labels = rows[3], rows[4]
    group, columns = None, {}
    for index, (g, label) in enumerate(zip(groups, labels, strict=True)):
        group = g or group
        if label:
            columns[(group, label)] = index
    by_name = {row[1]: row for row in rows[5:] if row[1]}
    total, communes, office = by_name["Toàn huyện"], by_name["Cộng: Cấp xã (cộng)"], by_name["Nam Trà My"]

    def value(row: tuple, group: str, label: str):  # noqa: ANN202
        return row[columns[(group, label)]]

    assert value(total, "Số hồ sơ nhận giải quyết", "Tổng số") == 310  # 280 received + 30 carried over
    assert value(total, "Số hồ sơ đã giải quyết", "Trước hạn") == 115
    assert value(total, "Số hồ sơ đã giải quyết", "Đúng hạn") == 65
    assert value(total, "Số hồ sơ đã giải quyết", "Quá hạn") == 60
    assert value(total, "Số hồ sơ chưa giải quyết", "Chờ bổ sung") == 20
    assert value(total, "Tỷ lệ (%)", "Đúng hạn") == 75.0
    assert value(total, "Tỷ lệ (%)", "Thanh toán trực tuyến") == "chưa có dữ liệu"
    assert value(communes, "Tỷ lệ (%)", "Số hóa kết quả") == 18.2
    assert value(office, "Từ chối, rút hồ sơ", "Từ chối") == 5 and office[2] == 1  # rank among offices
    assert by_name["Trà Don"][2] == 1 and by_name["Trà Mai"][2] == 1 and by_name["Trà Dơn"][2] == 3
    procedures = {r[0]: r for r in load_workbook(io.BytesIO(response.content))["Theo thủ tục"].iter_rows(
        min_row=2, max_row=3, values_only=True)}  # fmt: skip
    assert set(procedures) == {"1.004227", "2.000908"}
    # Per procedure: 1.004227 is the office's (received 100), 2.000908 the communes' (received 180).
    assert procedures["1.004227"][1:4] == ("Đăng ký khai sinh", "Toàn trình", 100)
    assert procedures["2.000908"][3] == 180 + 30  # total received = received + carried over
    report = client.get("/api/kpi/report", params=OCTOBER, headers=headers).json()
    assert report["procedures_online"] == {"known": 2, "full": 1, "partial": 1}
    md = client.get("/api/kpi/report", params={**OCTOBER, "format": "md"}, headers=headers)
    assert md.status_code == 200 and "Toàn huyện" in md.text and "Chờ bổ sung" in md.text


def test_the_report_command_writes_the_same_figures(adopted, tmp_path: Path) -> None:
    import csv

    out = tmp_path / "bao-cao.csv"
    _run("kpi", "report", "--from", "2026-10-01", "--to", "2026-10-31", "--format", "csv", "--out", str(out))
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    header, by_name = rows[0], {r[1]: r for r in rows[1:]}
    total = by_name["Toàn huyện"]
    assert total[header.index("Số hồ sơ đã giải quyết: Tổng số")] == "240"
    assert total[header.index("Tỷ lệ (%): Đúng hạn")] == "75.0"
    assert total[header.index("Tỷ lệ (%): Thanh toán trực tuyến")] == "chưa có dữ liệu"
    only = _run("kpi", "report", "--from", "2026-10-01", "--to", "2026-10-31", "--unit", "UBND xã Trà Dơn")
    assert "| Trà Dơn |" in only and "Trà Don |" not in only


def test_maintenance_keeps_every_event_and_refold_says_what_it_checked(adopted) -> None:
    url = adopted[0]
    with psycopg.connect(url) as conn:
        before = conn.execute("SELECT count(*) FROM dossier_events").fetchone()[0]
    assert before >= TOTAL + 50  # received + final events at least; 20 of them from 2023
    out = _run("db", "maintain")
    assert "dossier_events_p2023" not in out
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM dossier_events").fetchone()[0] == before
        old = conn.execute("SELECT count(*) FROM dossiers WHERE id LIKE 'NTM-H1-%' AND status = 'resolved'")
        assert old.fetchone()[0] == 20
    checked = _run("kpi", "check", "--from", "2026-10-01", "--to", "2026-10-31", "--refold")
    assert re.search(rf"checked {TOTAL} of {TOTAL} dossiers; 0 rows differ", checked), checked


def test_a_drill_down_of_more_than_1000_dossiers_pages_to_its_total(adopted, client: TestClient) -> None:
    home = adopted[1]
    rows = ["Số hồ sơ;Đơn vị tiếp nhận;Ngày tiếp nhận;Trạng thái"]
    rows += [f"NTM-NOV-{i:04d};UBND huyện Nam Trà My;{1 + i % 28:02d}/11/2026;Đang giải quyết" for i in range(1234)]
    sheet = home / "thang-11.csv"
    sheet.write_text("\n".join(rows) + "\n", encoding="utf-8")
    _run("kpi", "import", str(sheet))
    headers = _leader(client)
    params = {"from": "2026-11-01", "to": "2026-11-30", "figure": "received", "unit": "nam-tra-my", "limit": 500}
    seen: list[str] = []
    for offset in (0, 500, 1000):
        page = client.get("/api/kpi/dossiers/list", params={**params, "offset": offset}, headers=headers).json()
        assert page["total"] == 1234
        seen += [d["id"] for d in page["items"]]
    assert len(seen) == len(set(seen)) == 1234
    too_big = client.get("/api/kpi/dossiers/list", params={**params, "limit": 5000}, headers=headers)
    assert too_big.status_code in (400, 422)


def test_config_check_without_polygons_exits_0_with_a_note(tmp_path: Path) -> None:
    config = tmp_path / "khong-ranh-gioi.yaml"
    config.write_text(
        "id: thu\nname: Huyện Thử\nunits:\n  - {id: thu, name: Huyện Thử, level: district}\n"
        "  - {id: xa-a, name: Xã A, level: commune, parent: thu}\n"
        "  - {id: xa-b, name: Xã B, level: commune, parent: thu}\n"
        "cameras:\n  - {id: cam-a, name: Cam A, unit: xa-a, site: school, position: {lat: 15.1, lon: 108.1},"
        " stream_url: 'rtsp://10.0.0.1/1'}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["config", "check", str(config)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "3 of 3 units have no polygon" in result.output


def test_a_dated_merge_is_applied_with_its_diff_and_old_records_keep_their_unit(adopted) -> None:
    url, home, _ = adopted
    config = home / "nam-tra-my.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for unit in data["units"]:
        if unit["id"] == "tra-leng":  # merged into Trà Tập from 1 December 2026
            unit.update(valid_to="2026-12-01", successor="tra-tap")
        if unit["id"] == "tra-tap":
            unit.setdefault("former_names", []).append({"name": "Trà Leng", "valid_from": "2026-12-01"})
    data["users"][1]["unit"] = "tra-tap"  # the officer moves with the merge
    merged = home / "nam-tra-my-2026-12.yaml"
    merged.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with fast_hashing():
        dry = _run("district", "apply", str(merged), "--dry-run")
        assert "merge: tra-leng -> tra-tap from 2026-12-01" in dry
        assert "~ unit tra-leng: valid_to: None -> '2026-12-01'; successor_id: None -> 'tra-tap'" in dry
        assert "~ user can-bo-tra-leng: unit_id: 'tra-leng' -> 'tra-tap'" in dry
        _run("district", "apply", str(merged))
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT successor_id FROM units WHERE id = 'tra-leng'").fetchone()[0] == "tra-tap"
        # Records keep the unit they had: the October dossiers of Trà Leng are still Trà Leng's.
        assert conn.execute("SELECT count(*) FROM dossiers WHERE unit_id = 'tra-leng'").fetchone()[0] == 80


def test_with_a_dossier_retention_maintenance_drops_old_events_but_never_the_figures(
    adopted, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = adopted[0]
    march_2023 = {"from": "2023-03-01", "to": "2023-03-31"}
    headers = _leader(client)
    before = client.get("/api/kpi/dossiers", params=march_2023, headers=headers).json()["units"]["tra-leng"]
    assert (before["received"], before["resolved"], before["resolved_early"]) == (20, 20, 20)
    monkeypatch.setenv("IOC_DOSSIER_RETENTION_DAYS", "730")
    get_settings.cache_clear()
    try:
        out = _run("db", "maintain")
        assert "dossier_events_p202303" in out  # past the retention the district chose: dropped
        checked = _run("kpi", "check", "--from", "2023-03-01", "--to", "2023-03-31", "--refold")
        # The 2023 dossiers are no longer checked against their (dropped) events, and the rollup still
        # equals the dossiers.
        found = re.search(r"checked (\d+) of (\d+) dossiers; 0 rows differ", checked)
        assert found and int(found[1]) == int(found[2]) - 20, checked
    finally:
        get_settings.cache_clear()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM dossier_events WHERE dossier_id LIKE 'NTM-H1-%'").fetchone()[0] == 0
    after = client.get("/api/kpi/dossiers", params=march_2023, headers=headers).json()["units"]["tra-leng"]
    assert after == before
