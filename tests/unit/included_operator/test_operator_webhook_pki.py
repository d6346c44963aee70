"""The webhook's CA and server certificate (webhook_pki) and its client configs (webhooks).

The API server verifies the webhook's certificate against the injected bundle and by the
name it dials, so: the leaf is signed by the CA, carries exactly the names (an IP SAN for
the host's address), renews before its end, and a rotated CA stays trusted until it
expires. Time is an argument, so renewal is tested by moving it.
"""

from __future__ import annotations

import base64
import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from drydock_operator import webhook_pki, webhooks
from drydock_operator.config import OperatorSettings, load_settings
from drydock_operator.pki import KeyPair

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC)


def cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_the_leaf_is_signed_by_the_ca_for_exactly_the_names_dialled() -> None:
    ca = webhook_pki.fresh_ca()
    names = webhook_pki.dns_names("postgresql-operator-system")
    creds = webhook_pki.credentials(ca, "", names, NOW)
    leaf = cert(creds.server.cert_pem)
    ca_cert = cert(ca.cert_pem)
    public = ca_cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    leaf.verify_directly_issued_by(ca_cert)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "postgresql-operator-webhook-service.postgresql-operator-system.svc",
        "postgresql-operator-webhook-service.postgresql-operator-system",
        "postgresql-operator-webhook-service",
    ]
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert creds.ca_bundle.strip() == ca.cert_pem.strip()


def test_an_ip_address_gets_an_ip_san() -> None:
    ca = webhook_pki.fresh_ca()
    leaf = cert(webhook_pki.credentials(ca, "", ("127.0.0.1",), NOW).server.cert_pem)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == []


def test_the_leaf_is_renewed_a_week_before_its_end() -> None:
    ca = webhook_pki.fresh_ca()
    creds = webhook_pki.credentials(ca, "", ("127.0.0.1",), NOW)
    end = cert(creds.server.cert_pem).not_valid_after_utc
    assert end == NOW + webhook_pki.LEAF_LIFETIME
    assert creds.renew_at == end - webhook_pki.LEAF_RENEW_BEFORE


def test_a_ca_near_its_end_is_replaced_and_the_old_one_stays_in_the_bundle() -> None:
    ca = webhook_pki.fresh_ca()
    end = cert(ca.cert_pem).not_valid_after_utc
    assert webhook_pki.ca_usable(ca, NOW)
    assert not webhook_pki.ca_usable(ca, end - datetime.timedelta(days=29))
    assert not webhook_pki.ca_usable(KeyPair("not a certificate", "x"), NOW)
    assert not webhook_pki.ca_usable(None, NOW)
    new = webhook_pki.fresh_ca()
    later = end - datetime.timedelta(days=29)
    bundle = webhook_pki.bundle(new, ca.cert_pem, later)
    assert bundle.count("BEGIN CERTIFICATE") == 2
    assert (
        webhook_pki.bundle(new, ca.cert_pem, end + datetime.timedelta(days=1)).count(
            "BEGIN CERTIFICATE"
        )
        == 1
    ), "an expired previous CA is dropped"
    # A leaf never outlives its CA.
    leaf = cert(webhook_pki.credentials(ca, "", ("x",), later).server.cert_pem)
    assert leaf.not_valid_after_utc <= end


def shipped_webhook(path: str) -> dict[str, object]:
    return {
        "name": "vcluster.cnpg.io",
        "clientConfig": {
            "service": {"name": "svc", "namespace": "ns", "path": path, "port": 443},
        },
    }


def test_client_config_outside_the_cluster_is_a_url_with_the_shipped_path() -> None:
    settings = OperatorSettings()
    config = webhooks.client_config(
        shipped_webhook("/validate-cluster"), settings, "https://127.0.0.1:40123", "PEM"
    )
    assert config == {
        "caBundle": base64.b64encode(b"PEM").decode(),
        "url": "https://127.0.0.1:40123/validate-cluster",
    }
    # Injected once, the path is found again in the URL (a restart on another port).
    again = webhooks.client_config(
        {"clientConfig": config}, settings, "https://127.0.0.1:40999", "PEM"
    )
    assert again["url"] == "https://127.0.0.1:40999/validate-cluster"


def test_client_config_in_a_pod_names_the_operator_service() -> None:
    settings = load_settings({"POD_NAMESPACE": "ops"})
    config = webhooks.client_config(shipped_webhook("/mutate-cluster"), settings, "", "PEM")
    assert config["service"] == {
        "namespace": "ops",
        "name": webhook_pki.SERVICE,
        "path": "/mutate-cluster",
        "port": 443,
    }
    assert "url" not in config


def test_where_the_server_listens_and_what_its_certificate_names() -> None:
    outside = load_settings({})
    assert webhooks.target(outside, {}) == ("127.0.0.1", "127.0.0.1", ("127.0.0.1",))
    pod_env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAMESPACE": "ops"}
    addr, host, names = webhooks.target(load_settings(pod_env), pod_env)
    assert (addr, host) == ("0.0.0.0", "")  # noqa: S104
    assert names == webhook_pki.dns_names("ops")
    dev = load_settings({"DRYDOCK_OPERATOR_WEBHOOK_HOST": "192.168.1.5"})
    assert webhooks.target(dev, {})[1:] == ("192.168.1.5", ("192.168.1.5",))
