"""200 dossiers in 3 units whose October 2026 figures were computed by hand, read through the API.

Every expected number below is a constant worked out on paper from the groups built in
:func:`_build` (the arithmetic is in the comments), not recomputed by the code under test. The
groups cover every state and edge case of docs/kpi.md: early, on time, resolved exactly at the due
time, late on the due day and on a later day, refused after a supplement, withdrawn, open waiting
for a supplement, paid online but not digitised, received at 23:59 on the last day and at 00:00 on
the first day (local time), refused exactly at the period's first instant, resolved exactly at the
period's end, carried over from earlier months, no due time, and a citizen who changed their rating.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from staff import add_unit, app_settings, token

from ioc.clock import LOCAL_TZ
from ioc.http.app import create_app
from ioc.kpi.dossiers import refresh
from ioc.kpi.figures import FIGURES

OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=LOCAL_TZ)


Event = tuple[datetime, str, dict]


def _group(rows: list[tuple], prefix: str, n: int, unit: str, received: datetime | None, channel: str,
           due: datetime | None, *events: Event, ratings: list[list[Event]] | None = None) -> None:  # fmt: skip
    """``n`` dossiers with the same life; ``ratings[i]`` are the extra events of the i-th one."""
    for i in range(n):
        dossier = f"{prefix}-{i:02d}"
        payload: dict = {"channel": channel}
        if due is not None:
            payload["due_at"] = due.isoformat()
        life: list[Event] = [(received, "received", payload)] if received else []
        life += list(events)
        if ratings and i < len(ratings):
            life += ratings[i]
        rows += [(when, dossier, unit, event, data) for when, event, data in life]


def _rated(when: datetime, satisfied: bool) -> Event:
    return (when, "rated", {"satisfied": satisfied})


# fmt: off
def _build() -> list[tuple]:
    rows: list[tuple] = []
    a, b, c = "fx-a", "fx-b", "fx-c"
    due_a = at(10, 10, 17)
    # --- unit A: 80 dossiers -------------------------------------------------------------------
    _group(rows, "A1", 20, a, at(10, 3), "online", due_a, (at(10, 8, 10), "resolved", {}),
           (at(10, 3, 10), "paid_online", {}), (at(10, 4), "digitised", {}),
           ratings=[[_rated(at(10, 9), True)]] * 20)  # early (8 Oct < 10 Oct), paid, digitised, 20 satisfied
    _group(rows, "A2", 10, a, at(10, 3), "direct", due_a, (due_a, "resolved", {}), (at(10, 4), "digitised", {}),
           ratings=[[_rated(at(10, 11), False)]] * 4 + [[_rated(at(10, 11), True)]] * 6)  # exactly at due: on time
    _group(rows, "A3", 10, a, at(10, 5), "direct", due_a, (at(10, 10, 17, 1), "resolved", {}),
           ratings=[[_rated(at(10, 11), False), _rated(at(10, 12), True)]] * 10)  # late by a minute; re-rated
    _group(rows, "A4", 5, a, at(10, 5), "postal", due_a, (at(10, 12), "resolved", {}))  # late, later day
    _group(rows, "A5", 10, a, at(10, 6), "online", at(10, 20, 17), (at(10, 6, 10), "paid_online", {}),
           (at(10, 7), "supplement_requested", {}))  # paid, not digitised; awaiting supplement; overdue at end
    _group(rows, "A6", 5, a, at(10, 6), "online", at(11, 20, 17), (at(10, 7), "supplement_requested", {}),
           (at(10, 8), "supplemented", {}))  # open at end, not overdue
    _group(rows, "A7", 5, a, at(10, 31, 23, 59), "online", at(11, 7, 17))  # 23:59 on the 31st: October
    _group(rows, "A8", 5, a, at(11, 1, 0, 0), "direct", at(11, 7, 17))  # 00:00 on 1 November: November
    _group(rows, "A9", 5, a, at(9, 25), "direct", at(10, 2, 17), (at(10, 2, 16), "resolved", {}),
           ratings=[[_rated(at(10, 2, 18), False)]] * 5)  # carried over; due day, before due: on time
    _group(rows, "A10", 5, a, at(9, 20), "direct", at(9, 30, 17), (at(9, 30, 10), "resolved", {}))  # September
    # --- unit B: 70 dossiers -------------------------------------------------------------------
    _group(rows, "B1", 8, b, at(10, 1, 0, 0), "online", at(10, 15, 17), (at(10, 2), "supplement_requested", {}),
           (at(10, 4), "supplemented", {}), (at(10, 6), "refused", {}))  # 00:00 on the 1st; refused after supplement
    _group(rows, "B2", 2, b, at(10, 2), "postal", at(10, 15, 17), (at(10, 3), "withdrawn", {}))
    _group(rows, "B3", 30, b, at(10, 10), "direct", at(10, 17, 17), (at(10, 16), "resolved", {}),
           (at(10, 10, 11), "digitised", {}),
           ratings=[[_rated(at(10, 18), True)]] + [[_rated(at(10, 18), False)]] * 15)  # early; 1 of 16 satisfied
    _group(rows, "B4", 10, b, at(9, 30, 23, 59), "direct", at(10, 7, 17),
           (at(10, 7, 17), "resolved", {}))  # received 23:59 on 30 Sep: carried over; resolved at due: on time
    _group(rows, "B5", 5, b, at(9, 28), "direct", at(10, 5, 17),
           (at(10, 1, 0, 0), "refused", {}))  # refused at October's first instant: carried over and refused
    _group(rows, "B6", 15, b, at(10, 20), "online", at(10, 25, 17),
           (at(11, 1, 0, 0), "resolved", {}))  # resolved at October's end instant: open and overdue at end
    # --- unit C: 50 dossiers, all received before October --------------------------------------
    _group(rows, "C1", 20, c, at(8, 20), "direct", at(9, 5, 17))  # never finished: carried over, overdue
    _group(rows, "C2", 10, c, at(9, 10), "online", at(10, 31, 17),
           (at(10, 31, 23, 59), "resolved", {}))  # late on the due day, last minute of October
    _group(rows, "C3", 10, c, at(9, 15), "online", None, (at(10, 15), "resolved", {}))  # no due time
    _group(rows, "C4", 10, c, at(9, 1), "direct", at(9, 10, 17), (at(10, 31, 23, 59), "withdrawn", {}))
    return rows
# fmt: on


@pytest.fixture(scope="module")
def api(database_factory: Callable[..., str], mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from ioc.storage.timeseries import ensure_months

    url = database_factory(migrated=True)
    for unit in ("fx-a", "fx-b", "fx-c"):
        add_unit(url, unit)
    rows = _build()
    assert len({r[1] for r in rows}) == 200
    with psycopg.connect(url) as conn:
        ensure_months(conn, {date(2026, m, 1) for m in (8, 9, 10, 11)})
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dossier_events (time, dossier_id, unit_id, event, message_id, payload)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [(w, d, u, e, f"{d}-{e}-{w.timestamp()}", Jsonb({"event": e, **p})) for w, d, u, e, p in rows],
            )
        refresh(conn, {r[1] for r in rows})
    settings = app_settings(url, mqtt_url, var_dir=tmp_path_factory.mktemp("var"))
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {token(client, url, 'operator')}"}
        yield client, url, headers


def _counts(figures: dict) -> tuple:
    return tuple(figures[name] for name in COUNTED)


COUNTED = ("received", "received_online", "received_direct", "received_postal", "carried_over", "resolved",
           "resolved_early", "resolved_on_time", "resolved_late", "refused", "withdrawn", "open_at_end",
           "open_overdue_at_end", "paid_online", "digitised", "rated", "rated_satisfied")  # fmt: skip
RATES = ("on_time_rate", "online_rate", "paid_online_rate", "digitised_rate", "satisfaction_rate")

# Unit A, October. received = A1 20 + A2 10 + A3 10 + A4 5 + A5 10 + A6 5 + A7 5 = 65 (A8 is November);
# online 20+10+5+5 = 40, direct 10+10 = 20, postal 5; carried over: A9 5 (A10 finished 30 Sep);
# resolved 20+10+10+5+5 = 50: early A1 20, on time A2 10 + A9 5 = 15, late A3 10 + A4 5 = 15;
# open at end A5 10 + A6 5 + A7 5 = 20, overdue A5 10; paid A1 20 + A5 10 = 30; digitised among the resolved
# (official definition since #20): A1 20 + A2 10 = 30;
# rated A1 20 + A2 10 + A3 10 + A9 5 = 45, satisfied 20 + 6 + 10 (latest verdict) + 0 = 36.
A_OCT = (65, 40, 20, 5, 5, 50, 20, 15, 15, 0, 0, 20, 10, 30, 30, 45, 36)
# on time 35/50 = 70.0; online 40/65 = 61.538 -> 61.5; paid 30/65 = 46.15 -> 46.2; digitised 30/50 resolved = 60.0;
# 36/45 = 80.0
A_OCT_RATES = (70.0, 61.5, 46.2, 60.0, 80.0)
# Unit B, October. received B1 8 + B2 2 + B3 30 + B6 15 = 55: online 8+15 = 23, direct 30, postal 2;
# carried over B4 10 + B5 5 = 15; resolved B3 30 (early) + B4 10 (on time) = 40; refused B1 8 + B5 5 = 13;
# withdrawn 2; open at end B6 15, all overdue; digitised B3 30 (resolved on the 16th); rated 16, satisfied 1.
B_OCT = (55, 23, 30, 2, 15, 40, 30, 10, 0, 13, 2, 15, 15, 0, 30, 16, 1)
# on time 40/40 = 100.0; online 23/55 = 41.818 -> 41.8; paid 0/55 = 0.0; digitised 30/40 resolved = 75.0;
# satisfaction 1/16 = 6.25 -> 6.3 (half up, not to even).
B_OCT_RATES = (100.0, 41.8, 0.0, 75.0, 6.3)
# Unit C, October: nothing received; carried over 20+10+10+10 = 50; resolved C2 10 (late) + C3 10 (no due time:
# in none of early/on time/late) = 20; withdrawn C4 10; open at end C1 20, overdue 20.
C_OCT = (0, 0, 0, 0, 50, 20, 0, 0, 10, 0, 10, 20, 20, 0, 0, 0, 0)
C_OCT_RATES = (0.0, None, None, 0.0, None)  # 0/20 on time, 0/20 digitised; no received, no rating: no data


def test_october_figures_of_200_dossiers_match_the_hand_computed_ones(api) -> None:
    client, _, headers = api
    response = client.get("/api/kpi/dossiers", params={**OCTOBER, "unit": ["fx-a", "fx-b", "fx-c"]}, headers=headers)
    assert response.status_code == 200, response.text
    units = response.json()["units"]
    assert _counts(units["fx-a"]) == A_OCT
    assert _counts(units["fx-b"]) == B_OCT
    assert _counts(units["fx-c"]) == C_OCT
    assert tuple(units["fx-a"][r] for r in RATES) == A_OCT_RATES
    assert tuple(units["fx-b"][r] for r in RATES) == B_OCT_RATES
    assert tuple(units["fx-c"][r] for r in RATES) == C_OCT_RATES
    # Ranked by on-time rate: B 100.0, A 70.0, C 0.0. The previous period (31 Aug - 30 Sep) of A had one
    # resolution group, A10, before its due time on the due day: 100.0 -> change -30.0 points.
    assert [units[u]["rank"] for u in ("fx-b", "fx-a", "fx-c")] == [1, 2, 3]
    assert units["fx-a"]["change_pp"]["on_time_rate"] == -30.0


def test_november_starts_from_octobers_end(api) -> None:
    client, _, headers = api
    units = client.get("/api/kpi/dossiers", params={**NOVEMBER, "unit": ["fx-a", "fx-b"]}, headers=headers).json()
    a, b = units["units"]["fx-a"], units["units"]["fx-b"]
    # A: A8 received at 00:00 on 1 November; carried over = A's open at October's end (20).
    assert (a["received"], a["received_direct"], a["carried_over"], a["open_at_end"]) == (5, 5, 20, 25)
    # B: B6 resolved at 00:00 on 1 November, after its due time on 25 October: late, in November.
    assert (b["carried_over"], b["resolved"], b["resolved_late"], b["open_at_end"], b["on_time_rate"]) == (
        15, 15, 15, 0, 0.0,
    )  # fmt: skip


def test_every_count_equals_its_drill_down_list(api) -> None:
    client, _, headers = api
    params = {**OCTOBER, "unit": ["fx-a", "fx-b", "fx-c"]}
    units = client.get("/api/kpi/dossiers", params=params, headers=headers).json()["units"]
    for figure in FIGURES:
        listed = client.get("/api/kpi/dossiers/list", params={**params, "figure": figure}, headers=headers)
        assert listed.status_code == 200
        assert listed.json()["total"] == sum(units[u][figure] for u in units), figure
        assert len(listed.json()["items"]) == min(100, listed.json()["total"]), figure
    late = client.get("/api/kpi/dossiers/list", params={**params, "figure": "resolved_late"}, headers=headers).json()
    assert {d["id"][:2] for d in late["items"]} == {"A3", "A4", "C2"}


def test_the_766_estimate_says_what_it_is_missing(api) -> None:
    client, url, headers = api
    response = client.get("/api/kpi/766", params={**OCTOBER, "unit": "fx-a"}, headers=headers)
    assert response.status_code == 200, response.text
    groups = response.json()["units"]["fx-a"]["groups"]
    assert all(g["estimate"] is True and g["missing"] for g in groups.values())
    # Means of the rates that approximate each group (A, October): online (61.5 + 46.2) / 2 = 53.85 -> 53.9;
    # digitised over resolved (since #20): 30/50 = 60.0.
    assert {k: g["value"] for k, g in groups.items()} == {
        "cong_khai_minh_bach": None, "tien_do_giai_quyet": 70.0, "so_hoa_ho_so": 60.0,
        "dich_vu_cong_truc_tuyen": 53.9, "muc_do_hai_long": 80.0,
    }  # fmt: skip
    officer = {"Authorization": f"Bearer {token(client, url, 'commune_officer', 'fx-a')}"}
    assert client.get("/api/kpi/766", params={**OCTOBER, "unit": "fx-b"}, headers=officer).status_code == 403
    assert set(client.get("/api/kpi/766", params=OCTOBER, headers=officer).json()["units"]) <= {"fx-a"}
    bad = client.get("/api/kpi/766", params={"from": "2026-10-31", "to": "2026-10-01"}, headers=headers)
    assert bad.status_code == 400
