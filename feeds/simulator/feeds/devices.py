"""Cameras, IP loudspeakers and sensors: status (retained), periodic telemetry, outages and the
cameras' own motion/tamper events.

Each device is its own feed (own random stream), so the day of one device does not change when
another is added to the configuration. A device announces itself online at start, reports on its
expected interval, now and then drops off the network (an offline status, as its Last Will would
publish) and comes back after a while: enough for presence tracking and the wall's device map to
show a living district.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from feeds.simulator.core import SimMessage, SimulationContext, diurnal_rate, poisson_times, register_feed
from feeds.simulator.payloads import message
from ioc.clock import LOCAL_TZ

OUTAGES_PER_DAY = {"camera": 0.3, "radio": 0.6, "sensor": 0.2}


@dataclass(frozen=True)
class SimDevice:
    id: str
    kind: str
    unit_id: str
    interval_s: float
    profile: dict


class DeviceFeed:
    """One device's life: online, telemetry every interval, outages, camera events."""

    def __init__(self, device: SimDevice, root: str) -> None:
        self.device = device
        self.root = root
        self.name = f"device:{device.id}"
        self._n = 0

    def _msg(self, channel: str, at: datetime, retain: bool = False, **fields) -> SimMessage:
        self._n += 1
        d = self.device
        return message(self.root, d.unit_id, d.kind, d.id, channel, at, f"{d.id}-{self._n}", retain=retain, **fields)

    def messages(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        d = self.device
        at = start + timedelta(seconds=rng.uniform(0, 5))
        yield self._msg("status", at, retain=True, state="online", info=self._info(rng))
        next_outage = at + timedelta(days=rng.expovariate(OUTAGES_PER_DAY.get(d.kind, 0.2)))
        events = self._camera_events(at, rng) if d.kind == "camera" else iter(())
        pending_event = next(events, None)
        tick = at
        while True:
            tick += timedelta(seconds=d.interval_s * rng.uniform(0.95, 1.05))
            while pending_event is not None and pending_event.at <= tick:
                yield pending_event
                pending_event = next(events, None)
            if tick >= next_outage:
                reason = rng.choice(["last_will", "power_cut", "network_lost"])
                yield self._msg("status", tick, retain=True, state="offline", reason=reason)
                back = tick + timedelta(minutes=rng.uniform(10, 90))
                while pending_event is not None and pending_event.at <= back:
                    pending_event = next(events, None)  # an offline camera reports nothing
                tick = back
                yield self._msg("status", tick, retain=True, state="online", info=self._info(rng))
                next_outage = tick + timedelta(days=rng.expovariate(OUTAGES_PER_DAY.get(d.kind, 0.2)))
                continue
            yield self._msg("telemetry", tick, metrics=self._metrics(tick, rng))

    # -- what each kind says --------------------------------------------------------------------
    def _info(self, rng: random.Random) -> dict:
        kind = self.device.kind
        if kind == "camera":
            return {"firmware": "V5.7.3", "resolution": "1280x720", "codec": "h264"}
        if kind == "radio":
            return {"firmware": "2.4.1", "power": "mains", "volume": 70, "playing": False}
        return {"firmware": "1.2.0", "power": "solar"}

    def _metrics(self, at: datetime, rng: random.Random) -> dict[str, float]:
        kind = self.device.kind
        if kind == "camera":
            return {
                "fps": round(rng.uniform(4.6, 5.1), 2),
                "bitrate_kbps": round(rng.gauss(1800, 120), 1),
                "dropped_frames": float(rng.randint(0, 3)),
            }
        if kind == "radio":
            return {
                "signal_dbm": round(rng.gauss(-71, 4), 1),
                "volume_pct": 70.0,
                "temperature_c": round(rng.gauss(38, 2), 1),
                "supply_v": round(rng.gauss(220, 3), 1),
            }
        return self._sensor_metrics(at, rng)

    def _sensor_metrics(self, at: datetime, rng: random.Random) -> dict[str, float]:
        profile = self.device.profile
        hour = at.astimezone(LOCAL_TZ).hour + at.astimezone(LOCAL_TZ).minute / 60
        # An afternoon storm: rain peaks around 15h, water rises with a lag of about two hours.
        storm = math.exp(-((hour - 15.0) ** 2) / 4)
        swell = math.exp(-((hour - 17.0) ** 2) / 6)
        battery = round(rng.uniform(80, 95), 1)
        if profile.get("sensor_kind") == "water_level":
            warning = float(profile.get("warning", 300.0))
            level = warning * (0.45 + 0.6 * swell * profile.get("flood_factor", 1.0)) + rng.gauss(0, 3)
            return {"water_level_cm": round(max(level, 0.0), 1), "battery_pct": battery}
        if profile.get("sensor_kind") == "rain_gauge":
            return {"rain_mm_1h": round(max(0.0, 40 * storm + rng.gauss(0, 1.5)), 1), "battery_pct": battery}
        return {"value": round(rng.gauss(10, 1), 2), "battery_pct": battery}

    def _camera_events(self, start: datetime, rng: random.Random) -> Iterator[SimMessage]:
        """Motion reported by the camera itself (busy by day), and a rare tamper alarm."""
        for at in poisson_times(start, rng, lambda t: diurnal_rate(t, 6.0)):
            if rng.random() < 0.01:
                yield self._msg("event", at, rule="tamper", score=round(rng.uniform(0.7, 0.95), 2),
                                data={"cause": rng.choice(["covered", "defocused", "moved"])})  # fmt: skip
            else:
                yield self._msg("event", at, rule="motion", score=round(rng.uniform(0.3, 0.9), 2))


def sim_devices(district) -> list[SimDevice]:  # noqa: ANN001 - ioc.district.models.District
    """Every enabled device of the district configuration."""
    found: list[SimDevice] = []
    for cam in district.cameras:
        if cam.enabled:
            found.append(SimDevice(cam.id, "camera", cam.unit, float(cam.expected_interval_s), {}))
    for cluster in district.radio_clusters:
        if cluster.enabled:
            found.append(SimDevice(cluster.id, "radio", cluster.unit, float(cluster.expected_interval_s), {}))
    for sensor in district.sensors:
        if sensor.enabled:
            profile = {"sensor_kind": sensor.kind}
            if sensor.levels is not None:
                profile["warning"] = sensor.levels.warning
                # One sensor in the sample floods past its warning level in the evening.
                profile["flood_factor"] = 1.35 if sensor.id.endswith("01") else 1.0
            found.append(SimDevice(sensor.id, "sensor", sensor.unit, float(sensor.expected_interval_s), profile))
    return found


@register_feed
def device_feeds(context: SimulationContext) -> Iterable[DeviceFeed]:
    return [DeviceFeed(device, context.topic_root) for device in sim_devices(context.district)]
