"""A small private CA for the broker's TLS listener (small sites and tests), made with ``cryptography``.

``ioc broker certs --out DIR`` writes ``ca.crt``/``ca.key`` (kept once made), ``server.crt``/``server.key``
for the broker's host names and addresses, and on request ``clients/<name>.crt``/``.key`` whose
Common Name is the broker account (``use_identity_as_username``). A site with its own PKI uses its
own files instead: the generated configuration only names them.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ioc"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def ensure_ca(out: Path, name: str = "ioc broker CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of ``out`` (made when missing: re-running keeps every issued certificate valid)."""
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def issue(out: Path, stem: str, cn: str, *, server_names: list[str] | None = None) -> Path:
    """A leaf certificate signed by ``out``'s CA: a server one (``server_names``: DNS names and IP
    addresses) or a client one (CN = the broker account). Returns the certificate's path."""
    ca_cert, ca_key = ensure_ca(out)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names is not None else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )  # fmt: skip
    if server_names is not None:
        alt: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    target = out / stem
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_key(target.with_suffix(".key"), key)
    target.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return target.with_suffix(".crt")


def make_certs(out: Path, hosts: list[str], clients: list[str] = ()) -> dict[str, Path]:  # type: ignore[assignment]
    """CA (kept), a fresh server certificate for ``hosts``, and one client certificate per name."""
    ensure_ca(out)
    made = {"ca": out / "ca.crt", "server": issue(out, "server", hosts[0], server_names=hosts)}
    for name in clients:
        made[name] = issue(out, f"clients/{name}", name)
    return made
