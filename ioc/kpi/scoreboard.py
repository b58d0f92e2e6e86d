"""An estimate of the Decision 766/QĐ-TTg (2022) scoreboard from the dossier figures we hold.

The official index scores each unit over five groups from data of the national and provincial
public-service portals that the one-stop events do not carry (what was published, the catalogue of
procedures offered online, apology letters, the survey's criteria...). So this is not the official
score: each group we can approach is given as the mean of the rates that approximate it, marked
``"estimate": true`` with the list of what the official index needs and we lack; a group we
cannot approach at all has ``"value": null``. docs/kpi.md ("Decision 766 estimate") is the
reference for the choices below.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

#: group id -> (Vietnamese name, English name, rates used, what is missing for the official figure)
GROUPS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "cong_khai_minh_bach": (
        "Công khai, minh bạch", "Publicity and transparency", (),
        ("procedures published on the national public-service portal, complete and correct",
         "dossier progress synchronised to the national portal",
         "handling of citizens' feedback on procedures"),
    ),
    "tien_do_giai_quyet": (
        "Tiến độ giải quyết", "Progress and results of resolution", ("on_time_rate",),
        ("apology letters sent for late dossiers",
         "the official weighting of early, on-time and late dossiers"),
    ),
    "so_hoa_ho_so": (
        "Số hóa hồ sơ", "Digitisation of dossiers", ("digitised_rate",),
        ("digitisation of the results issued", "reuse of digitised data and documents"),
    ),
    "dich_vu_cong_truc_tuyen": (
        "Cung cấp dịch vụ công trực tuyến", "Online service provision", ("online_rate", "paid_online_rate"),
        ("share of procedures offered fully online (toàn trình) or partly online",
         "dossiers submitted through the national portal versus the provincial one"),
    ),
    "muc_do_hai_long": (
        "Mức độ hài lòng", "Satisfaction", ("satisfaction_rate",),
        ("the official survey's individual criteria (only the overall verdict is received)",
         "ratings collected outside the one-stop system"),
    ),
}  # fmt: skip

NOTE_VI = "Ước tính từ dữ liệu hồ sơ, không phải điểm chính thức theo Quyết định 766/QĐ-TTg."
NOTE_EN = "Estimated from the dossier data; not the official Decision 766/QĐ-TTg score."


def _mean(values: list[float]) -> float | None:
    if not values:
        return None
    mean = sum(Decimal(str(v)) for v in values) / len(values)
    return float(mean.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def scoreboard_766(figures: dict[str, Any]) -> dict[str, Any]:
    """One unit's estimate from its period figures (:func:`ioc.kpi.figures.with_rates` output)."""
    groups: dict[str, Any] = {}
    for key, (name_vi, name_en, rates, missing) in GROUPS.items():
        indicators = {rate: figures.get(rate) for rate in rates}
        groups[key] = {
            "name": name_vi,
            "name_en": name_en,
            "estimate": True,
            "value": _mean([v for v in indicators.values() if v is not None]),
            "indicators": indicators,
            "missing": list(missing),
        }
    return {"note": NOTE_VI, "note_en": NOTE_EN, "groups": groups}
