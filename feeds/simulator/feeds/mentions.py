"""Online mentions of the district (MentionV1) found by the monitoring integration.

News sites and social pages mention the district a few times an hour in daytime: mostly neutral
notices, some good news, some complaints, written the way local pages write, with the communes'
names. Once in a while a bad day (a landslide cuts a road) brings a burst of complaints within a
couple of hours, which the negative-mention spike rule is there to catch.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from feeds.simulator.core import SimMessage, SimulationContext, diurnal_rate, poisson_times, register_feed
from feeds.simulator.payloads import message

SOURCES = [
    ("baoquangnam.vn", "https://baoquangnam.vn/tin"), ("quangnam.gov.vn", "https://quangnam.gov.vn/bai"),
    ("Facebook: Bắc Trà My 24h", "https://facebook.com/bactramy24h/posts"),
    ("Zalo: Hội đồng hương Trà My", "https://zalo.me/g/tramy/msg"), ("YouTube: Trà My TV", "https://youtube.com/watch"),
]  # fmt: skip
NEUTRAL = [
    "UBND xã {c} tổ chức họp dân lấy ý kiến về quy hoạch khu dân cư.",
    "Thông báo lịch tiếp công dân tại xã {c} trong tuần tới.",
    "Xã {c} triển khai kế hoạch tổng điều tra nông nghiệp năm nay.",
    "Trạm y tế xã {c} thông báo lịch tiêm chủng mở rộng tháng này.",
    "Hội Nông dân xã {c} tổ chức lớp tập huấn trồng sâm Ngọc Linh.",
]
POSITIVE = [
    "Đường liên thôn ở xã {c} được bê tông hóa, bà con rất phấn khởi.",
    "Học sinh xã {c} đoạt giải cao trong kỳ thi học sinh giỏi, thầy cô rất tự hào.",
    "Cán bộ một cửa xã {c} nhiệt tình, thủ tục nhanh gọn, người dân hài lòng.",
    "Mô hình trồng quế giúp nhiều hộ ở {c} thoát nghèo bền vững.",
    "Lực lượng xung kích xã {c} hỗ trợ kịp thời bà con sau mưa lớn.",
]
NEGATIVE = [
    "Đường vào xã {c} sạt lở nghiêm trọng, xe không qua được.",
    "Người dân xã {c} bức xúc vì mất điện kéo dài mà không có thông báo.",
    "Trạm y tế xã {c} thiếu thuốc, bà con phải xuống huyện mua.",
    "Rác thải đổ bừa bãi ven suối ở {c}, gây ô nhiễm nguồn nước.",
    "Cầu tạm ở {c} xuống cấp rất nguy hiểm cho học sinh.",
]
BAD_DAY_CHANCE = 0.08  # chance, per simulated day, of a burst of complaints


class MentionFeed:
    name = "mentions"

    def __init__(self, communes: list[str], root: str, source) -> None:  # noqa: ANN001 - the integration
        self.communes = communes
        self.root = root
        self.source = source

    def _mention(self, at: datetime, n: int, rng: random.Random, pool: list[str] | None = None) -> SimMessage:
        if pool is None:
            pool = rng.choices([NEUTRAL, POSITIVE, NEGATIVE], weights=[60, 25, 15])[0]
        title = rng.choice(pool).format(c=rng.choice(self.communes))
        site, base = rng.choice(SOURCES)
        return message(
            self.root, self.source.unit, "mention", self.source.id, "event", at, f"tin-{at:%Y%m%d}-{n:06d}",
            source=site, url=f"{base}/{at:%Y%m%d}-{n:06d}", title=title, text=title,
        )  # fmt: skip

    def messages(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        if not self.communes:
            return
        burst: list[SimMessage] = []
        bad_day = None
        for n, at in enumerate(poisson_times(start, rng, lambda t: diurnal_rate(t, 2.0)), start=1):
            while burst and burst[0].at <= at:
                yield burst.pop(0)
            if at.date() != bad_day and rng.random() < BAD_DAY_CHANCE / 24:
                bad_day = at.date()
                times = sorted(at + timedelta(minutes=rng.uniform(0, 150)) for _ in range(rng.randint(6, 10)))
                burst = sorted(burst + [self._mention(t, 500_000 + n * 20 + i, rng, NEGATIVE)
                                        for i, t in enumerate(times)])  # fmt: skip
            yield self._mention(at, n, rng)


@register_feed
def mention_feeds(context: SimulationContext) -> Iterable[MentionFeed]:
    sources = [i for i in context.district.integrations if i.kind == "mention" and i.enabled]
    communes = [u.name for u in context.district.leaf_units()]
    return [MentionFeed(communes, context.topic_root, sources[0])] if sources else []
