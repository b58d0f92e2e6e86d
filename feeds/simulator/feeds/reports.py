"""Citizen reports ("phản ánh, kiến nghị") arriving from an outside app over MQTT.

Busy in the daytime, placed at a random point inside a commune, with Vietnamese text that fits the
category. Reports submitted on the IOC's own web page go through the HTTP API instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import datetime

from shapely.geometry import Point, shape

from feeds.simulator.core import SimMessage, SimulationContext, diurnal_rate, poisson_times, register_feed
from feeds.simulator.payloads import message

# Texts by a keyword of the category id; a category without a match uses GENERIC.
TEXTS: dict[str, list[str]] = {
    "giao-thong": [
        "Sạt lở taluy dương trên tuyến ĐT616, đá lăn xuống mặt đường, xe máy đi qua rất nguy hiểm.",
        "Ổ gà lớn giữa đường liên thôn, trời mưa đọng nước, đã có người bị ngã.",
        "Xe tải chở gỗ đậu lấn chiếm lòng đường trước chợ vào giờ tan học.",
    ],
    "moi-truong": [
        "Rác thải sinh hoạt đổ bừa bãi ven suối, bốc mùi hôi.",
        "Nước suối đục bất thường, nghi có người khai thác cát trái phép ở thượng nguồn.",
    ],
    "an-ninh": [
        "Nhóm thanh niên tụ tập gây mất trật tự sau 23 giờ gần nhà văn hóa thôn.",
        "Phát hiện người lạ chặt phá rừng phòng hộ gần khu vực trồng sâm.",
    ],
    "ha-tang": [
        "Đèn chiếu sáng công cộng trên cầu bị hỏng nhiều ngày.",
        "Cột điện nghiêng sau mưa lớn, dây điện võng thấp sát mặt đường.",
    ],
    "dich-vu-cong": [
        "Nộp hồ sơ cấp giấy chứng nhận quyền sử dụng đất đã quá hạn hẹn trả kết quả.",
        "Cổng dịch vụ công không thanh toán trực tuyến được lệ phí.",
    ],
    "y-te": [
        "Trạm y tế xã thiếu thuốc hạ sốt cho trẻ em.",
        "Nhiều hộ trong thôn có người sốt cao, đề nghị cử cán bộ y tế xuống kiểm tra.",
    ],
}
GENERIC = ["Đề nghị chính quyền kiểm tra, xử lý sớm.", "Người dân phản ánh sự việc cần được xem xét."]


class ReportFeed:
    name = "reports"

    def __init__(self, district, root: str, source) -> None:  # noqa: ANN001 - district model and its integration
        self.root = root
        self.source = source
        self.categories = [c.id for c in district.report_categories]
        self.units = [u for u in district.leaf_units() if u.polygon is not None]
        self.shapes = {u.id: shape(u.polygon.model_dump()) for u in self.units}

    def _point_in(self, unit_id: str, rng: random.Random) -> tuple[float, float]:
        area = self.shapes[unit_id]
        min_x, min_y, max_x, max_y = area.bounds
        while True:
            lon, lat = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
            if area.contains(Point(lon, lat)):
                return round(lat, 5), round(lon, 5)

    def messages(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        if not self.categories or not self.units:
            return
        for n, at in enumerate(poisson_times(start, rng, lambda t: diurnal_rate(t, 1.5)), start=1):
            category = rng.choice(self.categories)
            texts = next((v for k, v in TEXTS.items() if k in category), GENERIC)
            unit = rng.choice(self.units)
            lat, lon = self._point_in(unit.id, rng)
            yield message(
                self.root, self.source.unit, "report", self.source.id, "event", at,
                f"app-{start:%y%m%d}-{n:05d}",
                category=category, description=rng.choice(texts), lat=lat, lon=lon,
                consent=rng.random() < 0.7,
            )  # fmt: skip


@register_feed
def report_feeds(context: SimulationContext) -> Iterable[ReportFeed]:
    sources = [i for i in context.district.integrations if i.kind == "report"]
    return [ReportFeed(context.district, context.topic_root, sources[0])] if sources else []
