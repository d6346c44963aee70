"""The admission webhook's own certificates: a CA the operator provisions, a server leaf.

The API server calls the webhook over TLS and trusts only the `caBundle` of the webhook
configurations, so the operator makes a CA (kept in a Secret in its own namespace, which
no instance Role names) and injects its certificate into both configurations, as the
security guide describes. The server certificate is made at every start (and before it
expires) from that CA, for the names the API server will dial: the operator Service's
DNS names in a pod, the host's address outside one. Nothing here does I/O; the decisions
about renewal take the current time as an argument so the unit tests can move it.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drydock_operator.pki import KeyPair, new_ca

CA_SECRET = "postgresql-operator-ca"  # noqa: S105  (a Secret's name)
SERVICE = "postgresql-operator-webhook-service"
VALIDATING = "postgresql-operator-validating-webhook-configuration"
MUTATING = "postgresql-operator-mutating-webhook-configuration"

CA_RENEW_BEFORE = datetime.timedelta(days=30)
LEAF_LIFETIME = datetime.timedelta(days=30)
LEAF_RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class ServerCredentials:
    """What the webhook server runs with: its leaf, and the bundle clients must trust."""

    server: KeyPair
    ca_bundle: str
    renew_at: datetime.datetime


def not_after(cert_pem: str) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc


def ca_usable(ca: KeyPair | None, now: datetime.datetime) -> bool:
    """Keep a stored CA until it is within CA_RENEW_BEFORE of its end."""
    if ca is None or not ca.cert_pem or not ca.key_pem:
        return False
    try:
        return not_after(ca.cert_pem) - now > CA_RENEW_BEFORE
    except ValueError:
        return False  # unparsable: replace it


def fresh_ca() -> KeyPair:
    """A CA for the webhook alone (pki.new_ca's lifetime); it is replaced CA_RENEW_BEFORE
    its end, its leaves LEAF_RENEW_BEFORE theirs."""
    return new_ca("postgresql-operator-webhook-ca")


def bundle(ca: KeyPair, previous_cert: str, now: datetime.datetime) -> str:
    """The CA to trust, plus the previous one while it is still valid (a rotation does not
    cut off a server still presenting a leaf of the old CA)."""
    pems = [ca.cert_pem.strip()]
    if previous_cert and previous_cert.strip() != pems[0]:
        try:
            if not_after(previous_cert) > now:
                pems.append(previous_cert.strip())
        except ValueError:
            pass
    return "\n".join(pems) + "\n"


def dns_names(namespace: str) -> tuple[str, ...]:
    return (f"{SERVICE}.{namespace}.svc", f"{SERVICE}.{namespace}", SERVICE)


def server_cert(
    ca: KeyPair, names: tuple[str, ...], now: datetime.datetime, lifetime: datetime.timedelta
) -> KeyPair:
    """A serverAuth leaf for `names` (DNS names or IP addresses) signed by `ca`."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the webhook CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "postgresql-operator-webhook")])
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


def renew_at(server: KeyPair, ca: KeyPair) -> datetime.datetime:
    """When to replace the server leaf (or the CA, whichever is due first)."""
    return min(
        not_after(server.cert_pem) - LEAF_RENEW_BEFORE, not_after(ca.cert_pem) - CA_RENEW_BEFORE
    )


def credentials(
    ca: KeyPair, previous_ca_cert: str, names: tuple[str, ...], now: datetime.datetime
) -> ServerCredentials:
    server = server_cert(ca, names, now, LEAF_LIFETIME)
    return ServerCredentials(server, bundle(ca, previous_ca_cert, now), renew_at(server, ca))
