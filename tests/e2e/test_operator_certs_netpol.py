"""Network policies and bring-your-own certificates, at the API level (no node needed).

The operator runs in-process with its own ServiceAccount token and the shipped RBAC, on the
node-less control plane. Aspects: `spec.networkPolicy` makes the operator write exactly the
policy of `netpol.py` and turning it off deletes it, a namesake it did not write is left
alone; the CRD refuses a peer that is only an ipBlock and a TLS Secret without its CA; with
`spec.certificates` naming a CA with its key, the server certificate is issued by that CA,
`-ca` carries the CA certificates (not keys) and the instance Role names the user's pair but
no CA Secret; a user's server certificate (its CA without key) is reported as not renewed
and nothing is issued in its place.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from kopf.testing import KopfRunner
from operator_support import (
    NAMESPACE,
    clusters_path,
    core,
    create_cluster,
    get_cluster,
    installed_manifests,
    patch,
    role_secret_names,
    running_operator,
    shipped_manifests,
    wait_for,
    wait_until,
)

from pipeline.tools import controlplane
from pipeline.tools.controlplane import ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, resource_path

# isort: split
from drydock_operator import pki

pytestmark = pytest.mark.e2e

IMAGE = "registry.invalid/postgresql@sha256:" + "1" * 64
WEB = {"podSelector": {"matchLabels": {"app": "web"}}}


@pytest.fixture(scope="module")
def operator(
    admin: KubeAPI,
    control_plane_settings: ControlPlaneSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KopfRunner]:
    crds, rbac = shipped_manifests()
    with installed_manifests(admin, crds, rbac, NAMESPACE):
        cp = controlplane.up(control_plane_settings)
        workdir = tmp_path_factory.mktemp("operator-certs-netpol")
        with running_operator(cp, workdir, {}) as runner:
            yield runner


def policy_path(name: str | None = None) -> str:
    return resource_path("networking.k8s.io/v1", "networkpolicies", name, NAMESPACE)


def secret(admin: KubeAPI, name: str) -> dict[str, str]:
    found = admin.get(core("secrets", name)) or {}
    return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}


def make_secret(admin: KubeAPI, name: str, data: dict[str, str], kind: str = "Opaque") -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": kind,
        "stringData": data,
    }
    admin.create(core("secrets"), body)


def test_the_policy_follows_spec_network_policy(admin: KubeAPI, operator: KopfRunner) -> None:
    create_cluster(
        admin,
        "np",
        imageName=IMAGE,
        networkPolicy={"enabled": True, "applications": [WEB]},
    )
    policy = wait_for("np-instances", lambda: admin.get(policy_path("np-instances")))
    rules = {r["ports"][0]["port"]: r["from"] for r in policy["spec"]["ingress"]}
    assert sorted(rules) == [5432, 8000]  # 9187: no monitoring peer, no rule
    assert WEB in rules[5432]
    assert rules[8000] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "postgresql-operator-system"}
            }
        }
    ]
    patch(admin, clusters_path("np"), {"spec": {"networkPolicy": {"enabled": False}}})
    wait_for("np-instances deleted", lambda: admin.get(policy_path("np-instances")) is None)

    # A namesake the operator did not write stays when the Cluster has no policy.
    mine = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "np-instances", "namespace": NAMESPACE},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    admin.create(policy_path(), mine)
    patch(admin, clusters_path("np"), {"spec": {"enableSuperuserAccess": True}})
    wait_for(
        "a reconcile after it (np-superuser)", lambda: admin.get(core("secrets", "np-superuser"))
    )
    assert admin.get(policy_path("np-instances")) is not None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"networkPolicy": {"applications": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}},
            "applications[0]",
        ),
        ({"certificates": {"serverTLSSecret": "x"}}, "serverTLSSecret needs serverCASecret"),
        (
            {"certificates": {"replicationTLSSecret": "x"}},
            "replicationTLSSecret needs clientCASecret",
        ),
    ],
    ids=["ipblock-peer", "tls-without-ca", "replication-without-ca"],
)
def test_the_schema_refuses(
    admin: KubeAPI, operator: KopfRunner, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(KubeAPIError) as err:
        create_cluster(admin, "refused", imageName=IMAGE, **spec)
    assert err.value.status == 422
    assert message in str(err.value), err.value


def test_a_user_ca_with_its_key_issues_the_server_certificate(
    admin: KubeAPI, operator: KopfRunner
) -> None:
    ca = pki.new_ca("corp")
    make_secret(admin, "corp-ca", {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem})
    create_cluster(
        admin,
        "byo",
        imageName=IMAGE,
        certificates={"serverCASecret": "corp-ca", "serverAltDNSNames": ["db.example.com"]},
    )
    server = wait_for("byo-server", lambda: secret(admin, "byo-server").get("tls.crt"))
    cert = x509.load_pem_x509_certificate(server.encode())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem.encode()))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "db.example.com" in sans.get_values_for_type(x509.DNSName)
    published = secret(admin, "byo-ca")
    assert published["ca.crt"] == ca.cert_pem  # clients verify the server with it
    assert set(published) == {"ca.crt", "client-ca.crt"}
    assert not any("PRIVATE KEY" in v for v in published.values())
    own = secret(admin, "byo-ca-key")  # the operator's CA still signs the replication pair
    assert published["client-ca.crt"] == own["ca.crt"]
    replication = x509.load_pem_x509_certificate(
        secret(admin, "byo-replication")["tls.crt"].encode()
    )
    replication.verify_directly_issued_by(x509.load_pem_x509_certificate(own["ca.crt"].encode()))
    assert "corp-ca" not in role_secret_names(admin, "byo")
    status = wait_until(
        "status.certificates",
        lambda: get_cluster(admin, "byo").get("status", {}).get("certificates", {}),
        lambda c: c.get("serverCASecret") == "corp-ca",
    )
    assert set(status["expirations"]) == {"byo-server", "byo-replication"}
    assert "notRenewed" not in status


def test_user_certificates_are_read_not_renewed_and_a_keyless_ca_is_reported(
    admin: KubeAPI, operator: KopfRunner
) -> None:
    ca = pki.new_ca("corp2")
    pair = pki.new_server_cert(ca, ("usercerts-rw",))
    make_secret(admin, "corp2-ca", {"ca.crt": ca.cert_pem})  # no key
    make_secret(
        admin, "corp2-tls", {"tls.crt": pair.cert_pem, "tls.key": pair.key_pem}, "kubernetes.io/tls"
    )
    # A name no other module uses: the node-less control plane has no garbage collector,
    # so another test's "mine-server" Secret would outlive its Cluster.
    create_cluster(
        admin,
        "usercerts",
        imageName=IMAGE,
        certificates={"serverCASecret": "corp2-ca", "serverTLSSecret": "corp2-tls"},
    )
    status = wait_until(
        "status.certificates",
        lambda: get_cluster(admin, "usercerts").get("status", {}).get("certificates", {}),
        lambda c: "corp2-tls" in c.get("notRenewed", {}),
    )
    assert "user-provided" in status["notRenewed"]["corp2-tls"]
    assert admin.get(core("secrets", "usercerts-server")) is None  # nothing issued in its place
    names = role_secret_names(admin, "usercerts")
    assert "corp2-tls" in names and "corp2-ca" not in names
