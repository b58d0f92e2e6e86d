"""The district's loudspeaker clusters, simulated together (``ioc simulate``, tests, demos)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from feeds.radio.device import Faults, SimCluster
from ioc.clock import Clock
from ioc.mqtt import BrokerAddress
from ioc.radio.signing import CommandKeys


class RadioFleet:
    """One :class:`SimCluster` per (cluster, unit), each with its own MQTT connection and Last Will."""

    def __init__(
        self,
        clusters: Iterable[tuple[str, str]],
        address: BrokerAddress,
        *,
        root: str = "ioc/v1",
        clock: Clock | None = None,
        time_scale: float = 1.0,
        faults: Mapping[str, Faults] | None = None,
        keys: CommandKeys | None = None,
        addresses: Mapping[str, BrokerAddress] | None = None,
    ) -> None:
        """``keys``: the district's command keys (each cluster checks with its own public key);
        ``addresses``: a cluster's own broker login (user name = its id), else ``address``."""
        faults = faults or {}
        keys = keys or CommandKeys.from_settings()
        addresses = addresses or {}
        self.clusters = {
            cid: SimCluster(
                cid,
                unit,
                addresses.get(cid, address),
                root=root,
                clock=clock,
                time_scale=time_scale,
                faults=faults.get(cid),
                keys=keys,
            )  # fmt: skip
            for cid, unit in clusters
        }

    @classmethod
    def from_district(cls, district, address: BrokerAddress, **kwargs) -> RadioFleet:  # noqa: ANN001
        """Every enabled cluster of a :class:`~ioc.district.models.District`."""
        return cls([(c.id, c.unit) for c in district.radio_clusters if c.enabled], address, **kwargs)

    def __getitem__(self, cluster_id: str) -> SimCluster:
        return self.clusters[cluster_id]

    def start(self) -> None:
        for cluster in self.clusters.values():
            cluster.start()

    def wait_connected(self, timeout_s: float = 30.0) -> list[str]:
        """Wait until every cluster not faulted offline is connected; returns those that are not."""
        deadline = time.monotonic() + timeout_s
        waiting = [c for c in self.clusters.values() if not c.faults.offline]
        while time.monotonic() < deadline:
            waiting = [c for c in waiting if not c.connected.is_set()]
            if not waiting:
                return []
            time.sleep(0.05)
        return [c.id for c in waiting]

    def stop(self) -> None:
        for cluster in self.clusters.values():
            cluster.stop()
