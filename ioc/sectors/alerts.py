"""Sector threshold alerts: low attendance, disease clusters, spikes of negative mentions.

Each cause is an **episode** row in ``sector_episodes`` whose ``dedup_key`` is unique; the alert is
raised only when the episode row is inserted, so a cause alerts once, even after its alert was
resolved, and a redelivered or corrected report never alerts twice:

* attendance: the episode is (school, day): ``school.attendance:<school>:<day>``;
* disease cluster: (commune, disease, first case day of the cluster):
  ``health.cluster:<unit>:<disease>:<first day>``. A case day within ``cluster_days`` of an
  episode's first or last case day belongs to it (the episode grows, no new alert); only cases
  beyond that can start a new cluster;
* negative mentions: (watched unit, first mention of the spike):
  ``mentions.spike:<unit>:<first published time>``, growing while negative mentions come within
  ``window_hours`` of its last one.

Evaluations of one scope are serialised with a transaction-level advisory lock, so two ingest
workers storing cases of the same commune and disease cannot both start a cluster. All of this runs
in the caller's transaction: an alert exists exactly when the figures behind it are stored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

import psycopg

from ioc.alerts.escalation import EscalationPolicy
from ioc.alerts.model import AlertDraft, Severity
from ioc.alerts.store import raise_alerts
from ioc.clock import LOCAL_TZ
from ioc.kpi.figures import rate
from ioc.sectors.thresholds import SectorThresholds

log = logging.getLogger(__name__)
MAX_EVIDENCE_MENTIONS = 20


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=LOCAL_TZ)


def _unit_name(conn: psycopg.Connection, unit_id: str) -> str:
    row = conn.execute("SELECT name FROM units WHERE id = %s", (unit_id,)).fetchone()
    return row[0] if row else unit_id


class SectorAlerts:
    def __init__(self, thresholds: SectorThresholds, policies: Mapping[str, EscalationPolicy] | None = None) -> None:
        self.thresholds = thresholds
        self.policies = dict(policies or {})
        self.policy = thresholds.policy if thresholds.policy in self.policies else None

    # -- the one way an episode becomes an alert ----------------------------------------------------
    def _open_episode(
        self, conn: psycopg.Connection, *, rule: str, scope: str, unit_id: str, started: datetime, last: datetime,
        evidence_count: int, draft: AlertDraft, now: datetime,
    ) -> int | None:  # fmt: skip
        row = conn.execute(
            "INSERT INTO sector_episodes (rule, scope, unit_id, started_at, last_at, evidence, dedup_key)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
            (rule, scope, unit_id, started, last, evidence_count, draft.dedup_key),
        ).fetchone()
        if row is None:
            return None  # this cause already alerted
        changes = raise_alerts(conn, [draft], now=now, policies=self.policies)
        alert_id = changes[0].id if changes else None
        conn.execute("UPDATE sector_episodes SET alert_id = %s WHERE id = %s", (alert_id, row[0]))
        log.info("sector alert %s (%s)", draft.dedup_key, draft.title)
        return alert_id

    @staticmethod
    def _lock(conn: psycopg.Connection, scope: str) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"sector:{scope}",))

    # -- education ----------------------------------------------------------------------------------
    def attendance(
        self, conn: psycopg.Connection, *, school_id: str, school_name: str, unit_id: str, day: date,
        enrolled: int, present: int, at: datetime, message_id: str, now: datetime,
    ) -> int | None:  # fmt: skip
        """An alert for the school's commune when the day's share present is below the threshold."""
        rules = self.thresholds.education
        share = rate(present, enrolled)
        if enrolled < rules.min_enrolled or share is None or share >= rules.attendance_min_pct:
            return None
        draft = AlertDraft(
            kind="school.attendance", severity=Severity(rules.severity), at=at, unit_id=unit_id,
            dedup_key=f"school.attendance:{school_id}:{day.isoformat()}",
            title=f"Tỷ lệ chuyên cần thấp tại {school_name} ngày {day:%d/%m/%Y}: {share:g}%"
                  f" (ngưỡng {rules.attendance_min_pct:g}%)",
            description=f"{present}/{enrolled} học sinh có mặt.",
            evidence={"school_id": school_id, "day": day.isoformat(), "pupils_present": present,
                      "pupils_enrolled": enrolled, "attendance_pct": share,
                      "threshold_pct": rules.attendance_min_pct},
            source_ref={"message_id": message_id, "device_id": school_id}, policy=self.policy,
        )  # fmt: skip
        return self._open_episode(conn, rule="attendance", scope=school_id, unit_id=unit_id, started=_midnight(day),
                                  last=_midnight(day), evidence_count=1, draft=draft, now=now)  # fmt: skip

    # -- health -------------------------------------------------------------------------------------
    def disease_day(
        self, conn: psycopg.Connection, *, unit_id: str, disease: str, day: date, at: datetime, now: datetime
    ) -> int | None:
        """Cases of ``disease`` in ``unit_id`` changed on ``day``: grow the cluster it belongs to, or
        start one (and alert) when a window of ``cluster_days`` days around ``day`` holds enough cases."""
        rule = self.thresholds.health.cluster_rule(disease)
        if rule is None:
            return None  # not a notifiable disease of the configuration: shown, never alerted
        needed, days, severity = rule
        scope = f"{unit_id}:{disease}"
        self._lock(conn, scope)
        span = timedelta(days=days - 1)
        episode = conn.execute(
            "SELECT id, started_at, last_at FROM sector_episodes WHERE rule = 'disease_cluster' AND scope = %s"
            " AND started_at - %s <= %s AND last_at + %s >= %s ORDER BY started_at LIMIT 1",
            (scope, span, _midnight(day), span, _midnight(day)),
        ).fetchone()
        if episode is not None:
            first = min(episode[1], _midnight(day))
            last = max(episode[2], _midnight(day))
            total = self._cases(conn, unit_id, disease, first.astimezone(LOCAL_TZ).date(),
                                last.astimezone(LOCAL_TZ).date())  # fmt: skip
            conn.execute("UPDATE sector_episodes SET started_at = %s, last_at = %s, evidence = %s WHERE id = %s",
                         (first, last, total, episode[0]))  # fmt: skip
            return None
        best = conn.execute(
            """SELECT s::date, (SELECT coalesce(sum(cases), 0) FROM disease_cases
                                WHERE unit_id = %(unit)s AND disease = %(disease)s
                                  AND day BETWEEN s::date AND s::date + %(n)s - 1) AS total
               FROM generate_series(%(day)s::date - %(n)s + 1, %(day)s::date, interval '1 day') AS s
               ORDER BY total DESC, s LIMIT 1""",
            {"unit": unit_id, "disease": disease, "day": day, "n": days},
        ).fetchone()
        if best is None or best[1] < needed:
            return None
        window_start: date = best[0]
        case_days = conn.execute(
            "SELECT min(day), max(day) FROM disease_cases WHERE unit_id = %s AND disease = %s AND cases > 0"
            " AND day BETWEEN %s AND %s",
            (unit_id, disease, window_start, window_start + span),
        ).fetchone()
        first_day, last_day = case_days
        total = int(best[1])
        spec = self.thresholds.health.disease(disease)
        name = spec.name if spec else disease
        unit_name = _unit_name(conn, unit_id)
        clinics = conn.execute(
            "SELECT clinic_id, day, cases FROM disease_cases WHERE unit_id = %s AND disease = %s"
            " AND day BETWEEN %s AND %s ORDER BY day, clinic_id",
            (unit_id, disease, first_day, last_day),
        ).fetchall()
        draft = AlertDraft(
            kind="health.disease_cluster", severity=Severity(severity), at=at, unit_id=unit_id,
            dedup_key=f"health.cluster:{unit_id}:{disease}:{first_day.isoformat()}",
            title=f"Chùm ca bệnh {name} tại {unit_name}: {total} ca trong {days} ngày",
            description=f"Từ {first_day:%d/%m/%Y} đến {last_day:%d/%m/%Y}; ngưỡng {needed} ca trong {days} ngày.",
            evidence={"disease": disease, "disease_name": name, "cases": total, "first_day": first_day.isoformat(),
                      "last_day": last_day.isoformat(), "threshold_cases": needed, "window_days": days,
                      "by_clinic_day": [{"clinic_id": c, "day": d.isoformat(), "cases": n} for c, d, n in clinics]},
            policy=self.policy,
        )  # fmt: skip
        return self._open_episode(conn, rule="disease_cluster", scope=scope, unit_id=unit_id,
                                  started=_midnight(first_day), last=_midnight(last_day), evidence_count=total,
                                  draft=draft, now=now)  # fmt: skip

    @staticmethod
    def _cases(conn: psycopg.Connection, unit_id: str, disease: str, first: date, last: date) -> int:
        row = conn.execute(
            "SELECT coalesce(sum(cases), 0) FROM disease_cases WHERE unit_id = %s AND disease = %s"
            " AND day BETWEEN %s AND %s",
            (unit_id, disease, first, last),
        ).fetchone()
        return int(row[0])

    # -- online information ----------------------------------------------------------------------------
    def negative_mention(
        self, conn: psycopg.Connection, *, scope_unit_id: str, published_at: datetime, now: datetime
    ) -> int | None:
        """A negative mention about ``scope_unit_id`` was stored: grow the current spike, or start
        one (and alert) when the window before it holds enough negative mentions above the baseline."""
        rules = self.thresholds.mentions
        window = timedelta(hours=rules.window_hours)
        self._lock(conn, f"mentions:{scope_unit_id}")
        episode = conn.execute(
            "SELECT id FROM sector_episodes WHERE rule = 'negative_mentions' AND scope = %s"
            " AND started_at - %s <= %s AND last_at + %s >= %s ORDER BY started_at LIMIT 1",
            (scope_unit_id, window, published_at, window, published_at),
        ).fetchone()
        if episode is not None:
            conn.execute(
                "UPDATE sector_episodes SET started_at = least(started_at, %s), last_at = greatest(last_at, %s),"
                " evidence = evidence + 1 WHERE id = %s",
                (published_at, published_at, episode[0]),
            )
            return None
        start = published_at - window
        recent = conn.execute(
            "SELECT id, url, title, source, published_at FROM mentions WHERE scope_unit_id = %s"
            " AND sentiment = 'negative' AND published_at > %s AND published_at <= %s ORDER BY published_at, id",
            (scope_unit_id, start, published_at),
        ).fetchall()
        if len(recent) < rules.spike_min_negative:
            return None
        before = conn.execute(
            "SELECT count(*) FROM mentions WHERE scope_unit_id = %s AND sentiment = 'negative'"
            " AND published_at > %s AND published_at <= %s",
            (scope_unit_id, start - timedelta(days=rules.baseline_days), start),
        ).fetchone()[0]
        baseline = before * (rules.window_hours / (rules.baseline_days * 24)) if rules.baseline_days else 0.0
        if len(recent) <= rules.baseline_factor * baseline:
            return None  # many, but not more than usual
        first = recent[0][4]
        unit_name = _unit_name(conn, scope_unit_id)
        evidence: dict[str, Any] = {
            "negative_mentions": len(recent), "window_hours": rules.window_hours,
            "baseline_per_window": round(baseline, 2), "threshold": rules.spike_min_negative,
            "mentions": [{"id": i, "url": u, "title": t, "source": s, "published_at": p.isoformat()}
                         for i, u, t, s, p in recent[-MAX_EVIDENCE_MENTIONS:]],
        }  # fmt: skip
        draft = AlertDraft(
            kind="mentions.negative_spike", severity=Severity(rules.severity), at=published_at, unit_id=scope_unit_id,
            dedup_key=f"mentions.spike:{scope_unit_id}:{first.isoformat()}",
            title=f"Tin tiêu cực tăng đột biến về {unit_name}: {len(recent)} tin trong {rules.window_hours:g} giờ",
            description=f"Mức thường ngày: {baseline:.1f} tin mỗi {rules.window_hours:g} giờ.",
            evidence=evidence, policy=self.policy,
        )  # fmt: skip
        return self._open_episode(conn, rule="negative_mentions", scope=scope_unit_id, unit_id=scope_unit_id,
                                  started=first, last=published_at, evidence_count=len(recent), draft=draft,
                                  now=now)  # fmt: skip
