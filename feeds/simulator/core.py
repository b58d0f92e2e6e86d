"""The simulator's building blocks: a message with its simulated time, the Feed protocol, a registry.

A feed only describes *what* happens and *when*; it never sleeps or publishes. That keeps feeds
testable (take the first N messages of a seeded feed and look at them) and lets the runner replay a
whole day in seconds for tests or at wall-clock pace for a live wall.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ioc.clock import LOCAL_TZ


@dataclass(frozen=True, order=True)
class SimMessage:
    """One MQTT publication at simulated time ``at``."""

    at: datetime
    topic: str = field(compare=False)
    payload: bytes = field(compare=False)
    qos: int = field(default=1, compare=False)
    retain: bool = field(default=False, compare=False)


class Feed(Protocol):
    name: str

    def messages(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        """Messages from ``start`` on, in non-decreasing time order (may be endless)."""
        ...


FeedFactory = Callable[["SimulationContext"], Iterable[Feed]]
_FACTORIES: list[FeedFactory] = []


def register_feed(factory: FeedFactory) -> FeedFactory:
    """Decorator: each part of the system registers the feeds it contributes to the simulated day."""
    _FACTORIES.append(factory)
    return factory


def feed_factories() -> list[FeedFactory]:
    return list(_FACTORIES)


@dataclass
class SimulationContext:
    """What feeds may read: the district configuration and the topic root."""

    district: object
    topic_root: str


def merge(feeds: Iterable[Feed], start: datetime, seed: int) -> Iterator[SimMessage]:
    """All feeds' messages in time order; each feed gets its own RNG derived from the seed and its
    name, so adding a feed does not change what the others do."""
    streams = [feed.messages(start, random.Random(f"{seed}:{feed.name}")) for feed in feeds]
    return heapq.merge(*streams)


def diurnal_rate(at: datetime, base_per_hour: float, profile: str = "day") -> float:
    """Events per hour at local time ``at``: busy in daytime (peaks 7h and 17h), quiet at night."""
    hour = at.astimezone(LOCAL_TZ).hour + at.astimezone(LOCAL_TZ).minute / 60
    if profile == "night":
        factor = 1.0 if hour >= 19 or hour < 5 else 0.15
    else:
        peaks = math.exp(-((hour - 7.0) ** 2) / 2) + math.exp(-((hour - 17.0) ** 2) / 3)
        factor = 0.1 + (0.9 if 6 <= hour <= 21 else 0.0) * 0.5 + peaks
    return base_per_hour * factor


def poisson_times(start: datetime, rng: random.Random, rate: Callable[[datetime], float]) -> Iterator[datetime]:
    """Event times of a non-homogeneous Poisson process (thinning), rate in events per hour."""
    ceiling = max(rate(start + timedelta(minutes=30 * i)) for i in range(48)) or 1e-9
    at = start
    while True:
        at = at + timedelta(hours=rng.expovariate(ceiling))
        if rng.random() * ceiling <= rate(at):
            yield at


def periodic_times(start: datetime, rng: random.Random, every_s: float, jitter: float = 0.1) -> Iterator[datetime]:
    """Roughly periodic times (heartbeats), each device starting at a random phase."""
    at = start + timedelta(seconds=rng.uniform(0, every_s))
    while True:
        yield at
        at += timedelta(seconds=every_s * (1 + rng.uniform(-jitter, jitter)))
