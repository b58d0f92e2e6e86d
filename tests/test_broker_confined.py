"""Devices and services confined on a real Mosquitto (Debian) started with the files `ioc broker`
generates: the ACL matrix, TLS with the generated CA, client certificates, plaintext off, and the
password file in Mosquitto's own format (issue #14)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_support import Client, ConfinedBroker

from ingest.mosquitto import mosquitto_binary
from ioc.broker.accounts import accounts_for, acl_text
from ioc.broker.passwords import mosquitto_hash, rotate
from ioc.district.loader import load_district
from ioc.district.seed import device_rows
from ioc.net import free_port

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="Debian's mosquitto is not installed")
DISTRICT = load_district(Path(__file__).resolve().parent.parent / "config" / "district.yaml")
ROWS = {r["id"]: r for r in device_rows(DISTRICT)}


def topic(device_id: str, channel: str, unit: str | None = None) -> str:
    row = ROWS[device_id]
    return f"ioc/v1/{unit or row['unit_id']}/{row['kind']}/{device_id}/{channel}"


CAMERA = next(i for i, r in ROWS.items() if r["kind"] == "camera")
OTHER_CAMERA = next(i for i, r in ROWS.items() if r["kind"] == "camera" and r["unit_id"] != ROWS[CAMERA]["unit_id"])
SENSOR = next(i for i, r in ROWS.items() if r["kind"] == "sensor")
REPORT = next(i for i, r in ROWS.items() if r["kind"] == "report")
RADIO, RADIO_2 = "radio-tra-kot-1", "radio-tra-kot-2"
OTHER_UNIT = "tra-nu"

# (account, its "own" topic): what each kind of account exists to publish.
OWN = {
    RADIO: topic(RADIO, "status"),
    CAMERA: topic(CAMERA, "event"),
    f"ioc-detect-{ROWS[CAMERA]['unit_id']}": topic(CAMERA, "event"),
    "ioc-simulator": topic(SENSOR, "telemetry"),
    "ioc-radio-fleet": topic(RADIO_2, "status"),
    "ioc-radio": topic(RADIO_2, "cmd"),
    "ioc-ingest": topic(SENSOR, "presence"),
    "ioc-api": None,
}
TARGETS = {
    "another device's": topic(RADIO_2, "cmd/ack"),
    "another unit's": topic(RADIO, "status", unit=OTHER_UNIT),
    "another unit's camera": topic(OTHER_CAMERA, "event"),
    "radio command": topic(RADIO_2, "cmd"),
    "own command topic": topic(RADIO, "cmd"),
    "report (alert source)": topic(REPORT, "event"),
}
# Every "yes" of the matrix; any other (account, target) must be refused by the broker.
ALLOWED = {
    ("ioc-radio", "radio command"), ("ioc-radio", "own command topic"),
    ("ioc-simulator", "report (alert source)"), ("ioc-simulator", "another unit's camera"),
    ("ioc-radio-fleet", "another device's"),
}  # fmt: skip


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfinedBroker]:
    running = ConfinedBroker(tmp_path_factory.mktemp("mosq"), DISTRICT).start(clients=(RADIO,))
    try:
        yield running
    finally:
        running.stop()


def test_the_password_file_uses_mosquittos_own_format() -> None:
    hashed = mosquitto_hash("s3cret", salt=b"\x00" * 12)
    assert hashed.startswith("$7$101$AAAAAAAAAAAAAAAA$") and len(hashed.split("$")[-1]) == 88
    acl = acl_text(accounts_for(DISTRICT))
    assert "pattern" not in acl.replace("patterns", "")  # exact topics only: no rule leaks to service accounts
    assert f"user {RADIO}\ntopic write {topic(RADIO, 'telemetry')}" in acl


def test_acl_matrix_each_account_kind_publishes_only_what_it_needs(broker: ConfinedBroker) -> None:
    observer = Client(broker, "ioc-ingest").connect()
    assert observer.connected.is_set(), observer.refused
    observer.subscribe("ioc/v1/#")
    sent: dict[bytes, tuple[str, str]] = {}
    for account, own in OWN.items():
        for target, where in [("own", own), *TARGETS.items()]:
            if where is None:
                continue
            # One connection per try: Mosquitto drops an MQTT 5 client after a refused publish.
            client = Client(broker, account).connect()
            assert client.connected.is_set(), (account, client.refused)
            marker = f"{account}|{target}|{secrets.token_hex(4)}".encode()
            sent[marker] = (account, target)
            client.client.publish(where, marker, qos=1).wait_for_publish(2)
            client.close()
    time.sleep(1.0)
    arrived = {sent[m.payload] for m in observer.received if m.payload in sent}
    expected = {(a, "own") for a, own in OWN.items() if own is not None} | ALLOWED
    assert arrived == expected
    observer.close()


def test_a_device_reads_only_its_own_commands_and_a_cluster_cannot_command_any(broker: ConfinedBroker) -> None:
    device = Client(broker, RADIO).connect()
    device.subscribe("ioc/v1/#")  # asks for everything; the broker hands it only what its ACL allows
    sim = Client(broker, "ioc-simulator").connect()
    sim.subscribe("ioc/v1/#")
    radio = Client(broker, "ioc-radio").connect()
    for cluster in (RADIO, RADIO_2):
        radio.publish(topic(cluster, "cmd"), f"to {cluster}")
    Client(broker, RADIO_2).connect().client.publish(topic(RADIO, "cmd"), "a cluster commands another", qos=1)
    Client(broker, SENSOR).connect().publish(topic(SENSOR, "telemetry"), "sensor data")
    time.sleep(1.0)
    assert [(m.topic, m.payload) for m in device.received] == [(topic(RADIO, "cmd"), f"to {RADIO}".encode())]
    assert sim.received == []  # the simulator reads nothing: it cannot learn or replay commands
    for client in (device, sim, radio):
        client.close()


def test_wrong_password_and_anonymous_are_refused(broker: ConfinedBroker) -> None:
    assert Client(broker, RADIO, password="guess").connect().refused is not None
    assert Client(broker, None).connect().refused is not None


def test_tls_with_the_generated_ca_and_a_client_certificate_whose_cn_is_the_account(broker: ConfinedBroker) -> None:
    observer = Client(broker, "ioc-ingest", tls=True).connect()
    assert observer.connected.is_set(), observer.refused
    observer.subscribe("ioc/v1/#")
    over_tls = Client(broker, RADIO, tls=True).connect()
    assert over_tls.connected.is_set(), over_tls.refused
    over_tls.publish(topic(RADIO, "status"), "over tls")
    with_cert = Client(broker, None, cert=RADIO).connect()  # no password: the certificate's CN is the login
    assert with_cert.connected.is_set(), with_cert.refused
    with_cert.publish(topic(RADIO, "status"), "with cert")
    other = Client(broker, None, cert=RADIO).connect()
    other.client.publish(topic(RADIO_2, "status"), "cert, other device", qos=1)
    time.sleep(1.0)
    assert sorted(m.payload for m in observer.received) == [b"over tls", b"with cert"]
    no_cert = Client(broker, RADIO, port=broker.cert_port, tls=True).connect(3)  # password, but no certificate
    assert not no_cert.connected.is_set()


def test_with_plaintext_off_only_tls_answers_and_a_rotated_password_replaces_the_old(
    broker: ConfinedBroker, tmp_path: Path
) -> None:
    tls_only = ConfinedBroker(tmp_path, DISTRICT, plaintext=False, client_cert=False)
    tls_only.secrets.mkdir(parents=True)
    old = broker.password(RADIO)
    (tls_only.secrets / f"{RADIO}.password").write_text(old)
    rotate([RADIO], tls_only.secrets)
    tls_only.start()
    try:
        plain = Client(tls_only, RADIO, port=tls_only.port)
        with pytest.raises(ConnectionRefusedError):
            plain.client.connect("127.0.0.1", tls_only.port)
        assert "listener" not in [line.split()[0] for line in (tmp_path / "out/mosquitto.conf").read_text().splitlines()
                                  if f" {tls_only.port} " in line + " "]  # fmt: skip
        assert Client(tls_only, RADIO, tls=True).connect().connected.is_set()
        assert Client(tls_only, RADIO, password=old, tls=True).connect(3).refused is not None
    finally:
        tls_only.stop()
    assert free_port()  # the ports were the test's own, on loopback
