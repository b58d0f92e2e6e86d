"""The broker's files for tests/deploy: a CA, the broker's TLS certificate, a password file.

Stand-in for [device-trust]'s `ioc broker ...` (which generates these from the district
configuration): at merge, swap :func:`make_broker_files` for a call to it. The ACL is the real one
of config/mosquitto/ioc.acl; passwords are hashed by Debian's ``mosquitto_passwd``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BrokerFiles:
    directory: Path
    ca_pem: Path
    server_pem: Path
    server_key: Path
    passwd: Path
    acl: Path
    #: server certificate + key in one file, for HAProxy
    haproxy_pem: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_broker_files(directory: Path, accounts: dict[str, str], *, days: int = 30) -> BrokerFiles:
    """CA + a server certificate for 127.0.0.1/localhost (broker and proxy), passwords of ``accounts``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ioc test CA"))
        .issuer_name(_name("ioc test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    files = BrokerFiles(
        directory,
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "passwd",
        directory / "acl",
        directory / "haproxy.pem",
    )
    files.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.server_key.write_bytes(_key_pem(key))
    files.server_key.chmod(0o600)
    files.haproxy_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + _key_pem(key))
    files.haproxy_pem.chmod(0o600)
    shutil.copy(ROOT / "config" / "mosquitto" / "ioc.acl", files.acl)
    files.passwd.write_text("")
    for user, password in accounts.items():
        subprocess.run(["mosquitto_passwd", "-b", str(files.passwd), user, password], check=True, capture_output=True)
    return files
