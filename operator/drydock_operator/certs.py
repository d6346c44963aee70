"""Pure decisions about a Cluster's certificates: where the CA key lives, when a leaf is renewed.

The CA is split in two Secrets so that instances can trust it without being able to sign:
`<cluster>-ca` holds `ca.crt` only (the instance Role reads it by name, and clients fetch
the CA from it as they do from CloudNativePG's), and `<cluster>-ca-key` holds the key (with
its certificate) and is readable by the operator only: the instance Role never names it.
A Cluster created by an older operator, whose `-ca` still holds `ca.key`, is migrated: the
key moves to `-ca-key`, then `-ca` is rewritten without it.

The server (`-server`) and replication client (`-replication`) certificates are renewed
when less than `cert_renew_before_seconds` of their life remains (CloudNativePG renews at
7 days), when they were not issued by the Cluster's CA, or when the server's names changed
(`spec.certificates.serverAltDNSNames`). The instance managers see the Secret change and
reload PostgreSQL; streaming replicas reconnect with the new client certificate on their
next connection, and the existing stream is not interrupted.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from drydock_operator.config import OperatorSettings
from drydock_operator.model import Cluster, ParseError
from drydock_operator.resources import object_meta

Obj = dict[str, Any]
DNS_NAME = r"^[a-z0-9*]([-a-z0-9.*]*[a-z0-9])?$"


class CertificateError(ValueError):
    """spec.certificates names something the operator cannot use (the field is named)."""


@dataclass(frozen=True)
class CertificatesSpec:
    """`spec.certificates`, CloudNativePG's fields and meaning:

    - serverCASecret: the CA of the server certificate (`ca.crt`; with `ca.key` the
      operator issues and renews the server certificate with it);
    - serverTLSSecret: the server certificate itself (`tls.crt`, `tls.key`); needs
      serverCASecret; never renewed by the operator;
    - clientCASecret: the CA of client certificates (PostgreSQL's ssl_ca_file); with
      `ca.key` the operator issues and renews the replication certificate with it;
    - replicationTLSSecret: streaming_replica's client certificate; needs clientCASecret;
    - serverAltDNSNames: more names in the server certificate the operator issues.
    """

    server_ca_secret: str = ""
    server_tls_secret: str = ""
    client_ca_secret: str = ""
    replication_tls_secret: str = ""
    server_alt_dns_names: tuple[str, ...] = ()

    def user_secret_names(self) -> tuple[str, ...]:
        """The user's leaf Secrets, which the instances must read (their own keys)."""
        return tuple(n for n in (self.server_tls_secret, self.replication_tls_secret) if n)


def parse(body: Mapping[str, Any]) -> CertificatesSpec:
    raw = (body.get("spec") or {}).get("certificates")
    if raw is None:
        return CertificatesSpec()
    if not isinstance(raw, Mapping):
        raise ParseError("spec.certificates: expected an object")
    names = raw.get("serverAltDNSNames") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ParseError("spec.certificates.serverAltDNSNames: expected a list of DNS names")
    fields = {}
    for key in ("serverCASecret", "serverTLSSecret", "clientCASecret", "replicationTLSSecret"):
        value = raw.get(key) or ""
        if not isinstance(value, str):
            raise ParseError(f"spec.certificates.{key}: expected a Secret name")
        fields[key] = value
    spec = CertificatesSpec(
        server_ca_secret=fields["serverCASecret"],
        server_tls_secret=fields["serverTLSSecret"],
        client_ca_secret=fields["clientCASecret"],
        replication_tls_secret=fields["replicationTLSSecret"],
        server_alt_dns_names=tuple(names),
    )
    if spec.server_tls_secret and not spec.server_ca_secret:
        raise ParseError("spec.certificates.serverTLSSecret: needs serverCASecret (its CA)")
    if spec.replication_tls_secret and not spec.client_ca_secret:
        raise ParseError("spec.certificates.replicationTLSSecret: needs clientCASecret (its CA)")
    return spec


def ca_key_secret_name(cluster: Cluster) -> str:
    return f"{cluster.name}-ca-key"


def ca_cert_data(server_ca_pem: str, client_ca_pem: str) -> dict[str, str]:
    """What `<cluster>-ca` holds: `ca.crt`, the server's CA (clients and replicas verify the
    primary with it), and `client-ca.crt` only when client certificates have another CA."""
    data = {"ca.crt": server_ca_pem}
    if client_ca_pem and client_ca_pem != server_ca_pem:
        data["client-ca.crt"] = client_ca_pem
    return data


def ca_cert_secret(
    cluster: Cluster, settings: OperatorSettings, name: str, cert_pem: str, client_ca_pem: str = ""
) -> Obj:
    """`<cluster>-ca`: CA certificates alone, what instances and clients read."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(cluster, settings, name),
        "type": "Opaque",
        "stringData": ca_cert_data(cert_pem, client_ca_pem),
    }


def with_user_secrets(role: Obj, spec: CertificatesSpec) -> Obj:
    """The instance Role, its Secret rule also naming the user's server/replication pairs
    (never a CA Secret: the operator copies CA certificates into `-ca`)."""
    extra = spec.user_secret_names()
    if not extra:
        return role
    rules = []
    for rule in role["rules"]:
        if rule["resources"] == ["secrets"]:
            names = [*rule["resourceNames"], *(n for n in extra if n not in rule["resourceNames"])]
            rules.append({**rule, "resourceNames": names})
        else:
            rules.append(rule)
    return {**role, "rules": rules}


def status_of(
    spec: CertificatesSpec, in_place: Mapping[str, str], not_renewed: Mapping[str, str]
) -> dict[str, Any]:
    """`status.certificates`: CloudNativePG's fields, plus which certificates the operator
    will not renew and why (a Drydock addition)."""
    status: dict[str, Any] = {"expirations": expirations(in_place)}
    for key, value in (
        ("serverCASecret", spec.server_ca_secret),
        ("serverTLSSecret", spec.server_tls_secret),
        ("clientCASecret", spec.client_ca_secret),
        ("replicationTLSSecret", spec.replication_tls_secret),
    ):
        if value:
            status[key] = value
    if spec.server_alt_dns_names:
        status["serverAltDNSNames"] = list(spec.server_alt_dns_names)
    if not_renewed:
        status["notRenewed"] = dict(sorted(not_renewed.items()))
    return status


def ca_key_secret(cluster: Cluster, settings: OperatorSettings, cert_pem: str, key_pem: str) -> Obj:
    """`<cluster>-ca-key`: the CA's certificate and key, for the operator alone."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(cluster, settings, ca_key_secret_name(cluster)),
        "type": "Opaque",
        "stringData": {"ca.crt": cert_pem, "ca.key": key_pem},
    }


def server_names(cluster_names: tuple[str, ...], spec: CertificatesSpec) -> tuple[str, ...]:
    """The service names, then the user's extra names (each once, in order)."""
    return tuple(dict.fromkeys((*cluster_names, *spec.server_alt_dns_names)))


def not_after(cert_pem: str) -> datetime.datetime:
    return x509.load_pem_x509_certificate(cert_pem.encode()).not_valid_after_utc


def renewal_reason(
    cert_pem: str,
    ca_cert_pem: str,
    dns_names: tuple[str, ...],
    renew_before: datetime.timedelta,
    now: datetime.datetime,
) -> str | None:
    """Why the certificate must be issued again, or None while it is good.

    `dns_names` is empty for a client certificate (its names are not compared).
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        ca = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    except ValueError:
        return "it cannot be parsed"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "it was not issued by the Cluster's CA"
    if dns_names:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            have = tuple(san.value.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            have = ()
        if sorted(have) != sorted(dns_names):
            return "its names changed"
    left = cert.not_valid_after_utc - now
    if left < renew_before:
        return f"it expires in {max(left.total_seconds(), 0):.0f}s"
    return None


def expirations(certificates: Mapping[str, str]) -> dict[str, str]:
    """`status.certificates.expirations`: Secret name -> notAfter, as CloudNativePG shows."""
    found = {}
    for name, pem in sorted(certificates.items()):
        try:
            found[name] = not_after(pem).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
        except ValueError:
            continue
    return found
