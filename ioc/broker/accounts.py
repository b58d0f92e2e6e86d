"""Who may do what on the broker: one account per device and per service, each with the least rights.

Topic tree: ``<root>/<unit>/<kind>/<device_id>/<channel>`` (docs/mqtt.md). Rights are written as
exact topics (a device's unit and kind are in the district file), so a device cannot publish under
another unit even with its own id, nor invent topics: a broker that enforces this ACL is where a
stolen device login stops.

=====================  ======================================================================
account                rights
=====================  ======================================================================
``<device id>``        write its own ``telemetry``, ``event``, ``status``, ``snapshot``, ``cmd/ack``;
                       read its own ``cmd``
``ioc-ingest``         read the whole tree; write ``presence`` (derived); its shutdown barrier topic
``ioc-radio``          read the clusters' ``status``, ``cmd/ack``, ``event``; write their ``cmd``
``ioc-detect-<unit>``  write ``status``, ``telemetry``, ``event``, ``snapshot`` of that unit's cameras
``ioc-simulator``      write the upstream channels of the simulated devices (all but radio clusters)
``ioc-radio-fleet``    the simulated loudspeaker fleet: every cluster's device rights
``ioc-api``            none (it connects to tell ``/readyz`` the broker is up)
=====================  ======================================================================

Nobody but ``ioc-radio`` can publish a command, and a command only plays when its signature checks
(:mod:`ioc.radio.signing`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from ioc.contract.topics import root_parts
from ioc.district.models import District
from ioc.district.seed import device_rows

Access = Literal["read", "write", "readwrite"]
UPSTREAM = ("telemetry", "event", "status", "snapshot", "cmd/ack")
SERVICE_PREFIX = "ioc-"


@dataclass(frozen=True)
class Account:
    name: str
    kind: Literal["device", "service"]
    rules: tuple[tuple[Access, str], ...] = field(default_factory=tuple)
    purpose: str = ""


def _device_rules(root: str, unit: str, kind: str, device_id: str) -> list[tuple[Access, str]]:
    base = f"{root}/{unit}/{kind}/{device_id}"
    return [("write", f"{base}/{channel}") for channel in UPSTREAM] + [("read", f"{base}/cmd")]


def accounts_for(district: District, root: str = "ioc/v1") -> list[Account]:
    """Every account of the district, devices first (in file order), then the services."""
    root = "/".join(root_parts(root))
    devices = [r for r in device_rows(district) if r["enabled"]]
    clash = [r["id"] for r in devices if r["id"].startswith(SERVICE_PREFIX)]
    if clash:
        raise ValueError(f"device ids may not start with {SERVICE_PREFIX!r} (service accounts): {', '.join(clash)}")
    accounts = [
        Account(r["id"], "device", tuple(_device_rules(root, r["unit_id"], r["kind"], r["id"])), f"{r['kind']} device")
        for r in devices
    ]
    radios = [r for r in devices if r["kind"] == "radio"]
    cameras: dict[str, list[dict]] = defaultdict(list)
    for r in devices:
        if r["kind"] == "camera":
            cameras[r["unit_id"]].append(r)
    accounts.append(Account("ioc-ingest", "service", (
        ("read", f"{root}/#"), ("write", f"{root}/+/+/+/presence"), ("read", "ioc-ingest-barrier/#"),
    ), "ingest workers: read everything, publish presence"))  # fmt: skip
    accounts.append(Account("ioc-radio", "service", (
        ("read", f"{root}/+/radio/+/status"), ("read", f"{root}/+/radio/+/cmd/ack"),
        ("read", f"{root}/+/radio/+/event"), ("write", f"{root}/+/radio/+/cmd"),
    ), "radio service: commands out, status/acks/events in"))  # fmt: skip
    for unit, cams in sorted(cameras.items()):
        rules = [("write", f"{root}/{unit}/camera/{c['id']}/{ch}") for c in cams
                 for ch in ("status", "telemetry", "event", "snapshot")]  # fmt: skip
        accounts.append(Account(f"ioc-detect-{unit}", "service", tuple(rules), f"detector group of {unit}'s cameras"))
    simulated = [r for r in devices if r["kind"] != "radio"]
    accounts.append(Account("ioc-simulator", "service", tuple(
        ("write", f"{root}/{r['unit_id']}/{r['kind']}/{r['id']}/{ch}") for r in simulated
        for ch in ("telemetry", "event", "status", "snapshot")
    ), "feed simulator: the simulated devices' upstream channels"))  # fmt: skip
    accounts.append(Account("ioc-radio-fleet", "service", tuple(
        rule for r in radios for rule in _device_rules(root, r["unit_id"], "radio", r["id"])
    ), "simulated loudspeaker fleet: the clusters' device rights"))  # fmt: skip
    accounts.append(Account("ioc-api", "service", (), "HTTP API: connects for its readiness check only"))
    return accounts


def acl_text(accounts: list[Account]) -> str:
    """Mosquitto's ACL file: one ``user`` section per account, exact ``topic`` lines, no patterns (a
    ``pattern`` line would apply to the service accounts too)."""
    lines = ["# Generated by `ioc broker generate` from the district file; do not edit (docs/broker.md).", ""]
    for account in accounts:
        lines.append(f"# {account.purpose}" if account.purpose else "#")
        lines.append(f"user {account.name}")
        lines += [f"topic {access} {topic}" for access, topic in account.rules]
        lines.append("")
    return "\n".join(lines)
