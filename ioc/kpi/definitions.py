"""What each dossier figure means: its Vietnamese label, its definition and its formula (docs/kpi.md).

Every figure the API, the CLI report and the wall show is served with this text, so a leader can read
how a number was made (explainable KPIs) and a district can compare it with its periodic one-stop
report ("Báo cáo tình hình, kết quả giải quyết thủ tục hành chính"). The conditions themselves are in
:data:`ioc.kpi.figures.FIGURES`; a test checks that every figure has a definition here.
"""

from __future__ import annotations

from typing import Any

#: figure -> (Vietnamese label, English label, definition, formula)
DEFINITIONS: dict[str, tuple[str, str, str, str]] = {
    "received": ("Tiếp nhận trong kỳ", "Received in the period",
                 "Hồ sơ có ngày tiếp nhận trong kỳ (giờ Việt Nam).", "count(received_at in [from, to])"),
    "received_direct": ("Tiếp nhận trực tiếp", "Received in person", "Hồ sơ nộp trực tiếp, tiếp nhận trong kỳ.",
                        "count(received in period, channel = direct)"),
    "received_online": ("Tiếp nhận trực tuyến", "Received online", "Hồ sơ nộp trực tuyến, tiếp nhận trong kỳ.",
                        "count(received in period, channel = online)"),
    "received_postal": ("Tiếp nhận qua bưu chính", "Received by post", "Hồ sơ nộp qua bưu chính công ích.",
                        "count(received in period, channel = postal)"),
    "carried_over": ("Kỳ trước chuyển qua", "Carried over", "Hồ sơ tiếp nhận trước kỳ, chưa kết thúc khi kỳ bắt đầu.",
                     "count(received_at < from and (not finished or finished_at >= from))"),
    "resolved": ("Đã giải quyết", "Resolved", "Hồ sơ có kết quả giải quyết trong kỳ.",
                 "count(status = resolved, resolved_at in period)"),
    "resolved_early": ("Giải quyết trước hạn", "Resolved early", "Có kết quả vào một ngày trước ngày hẹn trả.",
                       "count(resolved in period, local day(resolved_at) < local day(due_at))"),
    "resolved_on_time": ("Giải quyết đúng hạn", "Resolved on time",
                         "Có kết quả trong ngày hẹn trả, không muộn hơn giờ hẹn (hạn chỉ có ngày: hết ngày đó).",
                         "count(resolved in period, same local day as due_at, resolved_at <= due_at)"),
    "resolved_late": ("Giải quyết quá hạn", "Resolved late", "Có kết quả sau thời hạn.",
                      "count(resolved in period, resolved_at > due_at)"),
    "refused": ("Từ chối giải quyết", "Refused", "Hồ sơ bị từ chối trong kỳ (không có ngày: tính ngày tiếp nhận, "
                "được đánh dấu).", "count(status = refused, finished_at in period)"),
    "withdrawn": ("Rút hồ sơ", "Withdrawn", "Công dân rút hồ sơ trong kỳ.",
                  "count(status = withdrawn, finished_at in period)"),
    "open_at_end": ("Chưa giải quyết cuối kỳ", "Open at the end",
                    "Hồ sơ đã tiếp nhận, chưa kết thúc khi kỳ kết thúc (đang giải quyết và chờ bổ sung).",
                    "count(received_at < end and (not finished or finished_at >= end))"),
    "awaiting_supplement_at_end": ("Chờ bổ sung", "Awaiting a supplement",
                                   "Hồ sơ đang chờ công dân bổ sung khi kỳ kết thúc (trạng thái hiện tại).",
                                   "count(status = awaiting_supplement, awaiting_since < end)"),
    "in_progress_at_end": ("Đang giải quyết", "In progress", "Hồ sơ chưa kết thúc cuối kỳ, trừ hồ sơ chờ bổ sung.",
                           "open_at_end - awaiting_supplement_at_end"),
    "open_overdue_at_end": ("Chưa giải quyết, quá hạn", "Open and overdue at the end",
                            "Hồ sơ chưa kết thúc cuối kỳ mà đã quá hạn.", "count(open at end, due_at < end)"),
    "paid_online": ("Thanh toán trực tuyến", "Paid online", "Hồ sơ tiếp nhận trong kỳ có thanh toán trực tuyến.",
                    "count(received in period, paid_online)"),
    "paid_online_known": ("Có thông tin thanh toán", "Payment known",
                          "Hồ sơ tiếp nhận trong kỳ mà nguồn dữ liệu cho biết có thanh toán trực tuyến hay không.",
                          "count(received in period, paid_online is known)"),
    "digitised": ("Số hóa kết quả", "Digitised", "Hồ sơ đã giải quyết trong kỳ có kết quả được số hóa.",
                  "count(resolved in period, digitised)"),
    "digitised_known": ("Có thông tin số hóa", "Digitisation known",
                        "Hồ sơ đã giải quyết trong kỳ mà nguồn dữ liệu cho biết có số hóa hay không.",
                        "count(resolved in period, digitised is known)"),
    "rated": ("Lượt đánh giá", "Rated", "Hồ sơ được công dân đánh giá trong kỳ (đánh giá cuối cùng).",
              "count(rated_at in period)"),
    "rated_satisfied": ("Hài lòng", "Satisfied", "Đánh giá hài lòng trong kỳ.", "count(rated in period, satisfied)"),
    "on_time_rate": ("Tỷ lệ giải quyết đúng hạn (%)", "On-time rate (%)",
                     "Phần trăm hồ sơ đã giải quyết trước hạn hoặc đúng hạn.",
                     "(resolved_early + resolved_on_time) / resolved x 100"),
    "online_rate": ("Tỷ lệ tiếp nhận trực tuyến (%)", "Online share (%)", "Phần trăm hồ sơ nộp trực tuyến.",
                    "received_online / received x 100"),
    "paid_online_rate": ("Tỷ lệ thanh toán trực tuyến (%)", "Paid online (%)",
                         "Phần trăm hồ sơ thanh toán trực tuyến, trong số hồ sơ có thông tin thanh toán.",
                         "paid_online / paid_online_known x 100"),
    "digitised_rate": ("Tỷ lệ số hóa kết quả (%)", "Digitised (%)",
                       "Phần trăm hồ sơ đã giải quyết có kết quả được số hóa (định nghĩa chính thức: trên số đã "
                       "giải quyết, không phải số tiếp nhận).", "digitised / digitised_known x 100"),
    "satisfaction_rate": ("Tỷ lệ hài lòng (%)", "Satisfaction (%)", "Phần trăm đánh giá hài lòng.",
                          "rated_satisfied / rated x 100"),
}  # fmt: skip

COMMON_RULES = (
    "Kỳ là các ngày theo giờ Việt Nam (UTC+07:00), tính cả ngày cuối. Tỷ lệ làm tròn một chữ số thập phân "
    "(làm tròn lên từ 0,5); mẫu số bằng 0 thì không có dữ liệu (null), không phải 0 % hay 100 %. Số liệu cộng theo "
    "cấp (văn phòng cấp huyện, cấp xã, toàn huyện) cộng các số đếm rồi mới tính tỷ lệ. Xếp hạng theo tỷ lệ đúng hạn, "
    "bằng nhau thì cùng hạng; văn phòng cấp huyện xếp riêng với các xã."
)


def definitions() -> dict[str, dict[str, Any]]:
    """The definitions as the API serves them."""
    return {
        name: {"label": vi, "label_en": en, "definition": text, "formula": formula}
        for name, (vi, en, text, formula) in DEFINITIONS.items()
    }
