"""Fresh credentials for a new Cluster: random passwords and a self-signed certificate chain.

This is the only module that draws randomness. It has no I/O: `controller.py` asks for
credentials only when the Secret that would hold them does not exist yet, and hands them
to the pure specs in `resources.py`. Keys are ECDSA P-256 (fast to make, accepted by
PostgreSQL's OpenSSL with TLS 1.3).
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

from cryptography import x509

# The OpenSSL backend is loaded here, not lazily by the first signature: that lazy import,
# racing another thread's import, hit CPython 3.11's import-lock KeyError in a full run.
from cryptography.hazmat.backends.openssl import backend as _openssl_backend  # noqa: F401
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSWORD_BYTES = 32
CA_DAYS = 3650
LEAF_DAYS = 90
LEAF_LIFETIME = datetime.timedelta(days=LEAF_DAYS)


def new_password() -> str:
    """A URL-safe random password (256 bits of entropy)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM text."""

    cert_pem: str
    key_pem: str


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_ca(common_name: str) -> KeyPair:
    """A self-signed CA that signs only this Cluster's server and client certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def _leaf(
    ca: KeyPair,
    common_name: str,
    dns_names: tuple[str, ...],
    usage: x509.ObjectIdentifier,
    lifetime: datetime.timedelta,
) -> KeyPair:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    ca_key = serialization.load_pem_private_key(ca.key_pem.encode(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key))


def new_server_cert(
    ca: KeyPair, dns_names: tuple[str, ...], lifetime: datetime.timedelta = LEAF_LIFETIME
) -> KeyPair:
    """The certificate PostgreSQL presents, valid for every service name of the Cluster."""
    return _leaf(ca, dns_names[0], dns_names, ExtendedKeyUsageOID.SERVER_AUTH, lifetime)


def new_client_cert(
    ca: KeyPair, user: str, lifetime: datetime.timedelta = LEAF_LIFETIME
) -> KeyPair:
    """A client certificate whose CN is the PostgreSQL user (`cert` authentication)."""
    return _leaf(ca, user, (), ExtendedKeyUsageOID.CLIENT_AUTH, lifetime)
