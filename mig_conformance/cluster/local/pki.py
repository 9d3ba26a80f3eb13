"""Certificates of one local control plane: a per-run CA, serving certs, client certs, the service-account key.

ECDSA P-256 keys (fast to generate); everything is written as PEM under one folder, private keys mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mig_conformance.common.private_files import write_private

VALIDITY = dt.timedelta(days=30)
SERVING_SANS = ("127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local")


@dataclass(frozen=True)
class Identity:
    """A client certificate subject: user name (CN) and groups (O)."""

    user: str
    groups: tuple[str, ...] = ()


#: The client identities of one control plane, by file stem.
CLIENTS: dict[str, Identity] = {
    "admin": Identity("kubernetes-admin", ("system:masters",)),
    "kube-scheduler": Identity("system:kube-scheduler"),
    "kube-controller-manager": Identity("system:kube-controller-manager"),
    "kwok": Identity("system:kwok-controller", ("system:kwok",)),
}
#: Serving certificates (SANs: loopback names) by file stem.
SERVERS = ("kube-apiserver", "kube-scheduler", "kube-controller-manager")


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Paths of everything `generate` wrote."""

    folder: Path
    ca: KeyPair
    servers: dict[str, KeyPair]
    clients: dict[str, KeyPair]
    sa_key: Path  # service-account signing key (private)
    sa_pub: Path  # its public key, for verification


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY))


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    name = _name("mig-conformance-local-ca")
    cert = (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, subject: x509.Name,
          server: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    b = (_builder(subject, ca_cert.subject, key.public_key())
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if server:
        names: list[x509.GeneralName] = []
        for san in SERVING_SANS:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                names.append(x509.DNSName(san))
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def generate(folder: Path) -> Pki:
    """Write a fresh CA, the serving and client certificates and the service-account key pair to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca()
    ca = KeyPair(folder / "ca.crt", folder / "ca.key")
    _write_cert(ca.cert, ca_cert)
    _write_key(ca.key, ca_key)

    def leaf(stem: str, subject: x509.Name, server: bool) -> KeyPair:
        key, cert = _leaf(ca_key, ca_cert, subject, server)
        pair = KeyPair(folder / f"{stem}.crt", folder / f"{stem}.key")
        _write_cert(pair.cert, cert)
        _write_key(pair.key, key)
        return pair

    servers = {stem: leaf(f"{stem}-serving", _name(stem), True) for stem in SERVERS}
    clients = {stem: leaf(stem, _name(i.user, i.groups), False) for stem, i in CLIENTS.items()}
    sa = _new_key()
    sa_key, sa_pub = folder / "sa.key", folder / "sa.pub"
    _write_key(sa_key, sa)
    sa_pub.write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo))
    return Pki(folder, ca, servers, clients, sa_key, sa_pub)


def remove_private_keys(pki: Pki) -> None:
    """Delete every private key (after the run; certificates stay as evidence)."""
    for path in [pki.ca.key, pki.sa_key, *(p.key for p in pki.servers.values()),
                 *(p.key for p in pki.clients.values())]:
        path.unlink(missing_ok=True)


def existing(folder: Path) -> Pki:
    """The paths `generate` wrote to `folder` (files are not checked)."""
    def pair(stem: str) -> KeyPair:
        return KeyPair(folder / f"{stem}.crt", folder / f"{stem}.key")

    return Pki(folder, pair("ca"), {s: pair(f"{s}-serving") for s in SERVERS}, {s: pair(s) for s in CLIENTS},
               folder / "sa.key", folder / "sa.pub")
