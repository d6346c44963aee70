"""A Cluster's network security on the real node: its NetworkPolicy enforced, the operator's
metrics, and its certificates renewed while replication streams.

One 2-instance Cluster `net` (`imageName` only, the operand Drydock builds), with
`spec.networkPolicy` allowing 5432 from pods labelled app=psql-client. The node enforces
policies with kube-router (firewall only). The operator runs in-process on the node's host,
so it reaches the instances' 8000 from the host's end of the node link: it is configured
with that address (`DRYDOCK_OPERATOR_SOURCE_CIDRS`), as an operator outside the pod network
would be. It signs leaves that live 240 s and renews them when less than 180 s remain, so a
renewal is due a minute after each issue.

Aspects: a stranger pod cannot reach 5432 while an allowed pod can; the operator (the host)
still reaches 8000 and nobody reaches 9187 (no monitoring peers named); turning the policy
off removes it and the stranger gets in. The operator's metrics endpoint shows the
Cluster's image and digest and its reconciles. The CA key is in `-ca-key`, which the
instances' ServiceAccount cannot read, and `-ca` holds the certificate alone. Server and
replication certificates near expiry are renewed (new serials, later notAfter, the status
shows the expirations), the replica keeps streaming over TLS 1.3, and a client still
verifies the server.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography import x509
from kopf.testing import KopfRunner
from node_support import RESTRICTED, namespace
from operator_support import (
    can,
    installed_manifests,
    patch,
    running_operator,
    shipped_manifests,
    wait_for,
    wait_until,
)
from pg_support import Images, manager_status, psql, wait_healthy

from pipeline.tools.kubeapi import KubeAPI, resource_path
from pipeline.tools.node import Node

pytestmark = pytest.mark.e2e

NS = "e2e-clusternet"
NAME = "net"
GROUP_VERSION = "postgresql.cnpg.io/v1"
HEALTHY_TIMEOUT = 420.0
CLIENT = {"app": "psql-client"}
STRANGER = {"app": "stranger"}
# kube-router admits a new client pod's address once it has synced after the pod started;
# clients wait this long before connecting, so a refusal is the policy's, not a race's.
SETTLE = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def operator(
    api: KubeAPI,
    started: Node,
    pg_images: Images,
    metrics_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KopfRunner]:
    crds, rbac = shipped_manifests()
    with installed_manifests(api, crds, rbac, NS):
        namespace(api, NS, RESTRICTED)
        extra = {
            "DRYDOCK_OPERATOR_IMAGE": pg_images.operator,
            "DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS": f"127.0.0.1:{metrics_port}",
            "DRYDOCK_OPERATOR_SOURCE_CIDRS": f"{started.layout.host_ip}/32",
            "DRYDOCK_OPERATOR_CERT_DURATION_SECONDS": "240",
            "DRYDOCK_OPERATOR_CERT_RENEW_BEFORE_SECONDS": "180",
        }
        workdir = tmp_path_factory.mktemp("operator-clusternet")
        with running_operator(started.control_plane, workdir, extra) as runner:
            yield runner


def cluster_path(name: str = NAME) -> str:
    return resource_path(GROUP_VERSION, "clusters", name, NS)


def get_cluster(api: KubeAPI, name: str) -> dict[str, Any]:
    return api.get(cluster_path(name)) or {}


@pytest.fixture(scope="module")
def net(api: KubeAPI, operator: KopfRunner, pg_images: Images) -> dict[str, Any]:
    api.create(
        resource_path(GROUP_VERSION, "clusters", namespace=NS),
        {
            "apiVersion": GROUP_VERSION,
            "kind": "Cluster",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {
                "instances": 2,
                "imageName": pg_images.operand,
                "storage": {"size": "256Mi"},
                "networkPolicy": {
                    "enabled": True,
                    "applications": [{"podSelector": {"matchLabels": CLIENT}}],
                },
            },
        },
    )
    return wait_healthy(lambda n: get_cluster(api, n), NAME, pg_images.operand, 2, HEALTHY_TIMEOUT)


def pods(api: KubeAPI) -> dict[str, dict[str, Any]]:
    listing = api.request(
        "GET",
        resource_path("v1", "pods", namespace=NS),
        params={"labelSelector": f"cnpg.io/cluster={NAME}"},
    ).json()
    return {p["metadata"]["name"]: p for p in listing["items"]}


def primary_pod(api: KubeAPI) -> dict[str, Any]:
    (found,) = [
        p
        for p in pods(api).values()
        if p["metadata"]["labels"]["cnpg.io/instanceRole"] == "primary"
    ]
    return found


def client_sql(
    api: KubeAPI, images: Images, sql: str, labels: dict[str, str] = CLIENT
) -> tuple[bool, str]:
    return psql(
        api,
        NS,
        images.operand,
        sql,
        secret=f"{NAME}-app",
        host=f"{NAME}-rw",
        labels=labels,
        ca_secret=f"{NAME}-ca",
        settle_seconds=SETTLE,
    )


def reaches(url: str) -> bool:
    try:
        requests.get(url, timeout=3)
    except requests.RequestException:
        return False
    return True


def secret_data(api: KubeAPI, name: str) -> dict[str, str]:
    found = api.get(resource_path("v1", "secrets", name, NS)) or {}
    return {k: base64.b64decode(v).decode() for k, v in (found.get("data") or {}).items()}


def certificate(api: KubeAPI, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(secret_data(api, name)["tls.crt"].encode())


# --- tests ----------------------------------------------------------------------------------


def test_a_stranger_cannot_reach_5432_an_application_and_the_operator_can(
    api: KubeAPI, net: dict[str, Any], pg_images: Images
) -> None:
    policy = api.get(
        resource_path("networking.k8s.io/v1", "networkpolicies", f"{NAME}-instances", NS)
    )
    assert policy is not None and policy["spec"]["policyTypes"] == ["Ingress"]
    assert client_sql(api, pg_images, "SELECT 1") == (True, "1")
    ok, out = client_sql(api, pg_images, "SELECT 1", labels=STRANGER)
    assert not ok and "Connection refused" in out, out  # kube-router REJECTs
    ip = primary_pod(api)["status"]["podIP"]
    assert manager_status(primary_pod(api))["isPrimary"] is True  # 8000 from the operator's host
    assert not reaches(f"http://{ip}:9187/metrics")  # no monitoring peer named: denied

    patch(api, cluster_path(), {"spec": {"networkPolicy": {"enabled": False}}})
    wait_for(
        "the policy removed",
        lambda: (
            api.get(
                resource_path("networking.k8s.io/v1", "networkpolicies", f"{NAME}-instances", NS)
            )
            is None
        ),
    )
    ok, out = wait_until(
        "the stranger let in",
        lambda: client_sql(api, pg_images, "SELECT 1", labels=STRANGER),
        lambda r: r[0],
        timeout=90,
    )
    assert out == "1"
    assert reaches(f"http://{ip}:9187/metrics")
    patch(api, cluster_path(), {"spec": {"networkPolicy": {"enabled": True}}})


def test_the_operators_metrics_show_the_clusters_image_and_reconciles(
    net: dict[str, Any], pg_images: Images, metrics_port: int
) -> None:
    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    digest = pg_images.operand.split("@", 1)[1]
    assert (
        f'drydock_cluster_image_info{{namespace="{NS}",cluster="{NAME}",'
        f'image="{pg_images.operand}",digest="{digest}",major=""}} 1'
    ) in text
    (success,) = [
        line
        for line in text.splitlines()
        if line.startswith(
            'controller_runtime_reconcile_total{controller="cluster",result="success"}'
        )
    ]
    assert int(success.rsplit(" ", 1)[1]) > 0
    assert (
        'controller_runtime_reconcile_time_seconds_bucket{controller="cluster",le="+Inf"}' in text
    )


def test_the_ca_key_is_for_the_operator_only(api: KubeAPI, net: dict[str, Any]) -> None:
    assert set(secret_data(api, f"{NAME}-ca")) == {"ca.crt"}
    assert set(secret_data(api, f"{NAME}-ca-key")) == {"ca.crt", "ca.key"}
    instance = f"system:serviceaccount:{NS}:{NAME}"
    assert can(api, instance, "get", "secrets", name=f"{NAME}-ca", namespace=NS)
    assert not can(api, instance, "get", "secrets", name=f"{NAME}-ca-key", namespace=NS)


def test_certificates_near_expiry_are_renewed_and_replication_keeps_streaming(
    api: KubeAPI, net: dict[str, Any], pg_images: Images
) -> None:
    names = (f"{NAME}-server", f"{NAME}-replication")
    before = {n: certificate(api, n) for n in names}
    after = wait_until(
        "both certificates renewed",
        lambda: {n: certificate(api, n) for n in names},
        lambda now: all(now[n].serial_number != before[n].serial_number for n in names),
        timeout=150,
    )
    for n in names:
        assert after[n].not_valid_after_utc > before[n].not_valid_after_utc
        assert (after[n].not_valid_after_utc - after[n].not_valid_before_utc).total_seconds() < 600
    ca = x509.load_pem_x509_certificate(secret_data(api, f"{NAME}-ca")["ca.crt"].encode())
    for n in names:
        after[n].verify_directly_issued_by(ca)
    expirations = wait_until(
        "status.certificates",
        lambda: get_cluster(api, NAME).get("status", {}).get("certificates", {}),
        lambda c: set(c.get("expirations", {})) == set(names),
    )
    assert set(expirations["expirations"]) == set(names)

    def streaming() -> set[tuple[str, str, bool, str]]:
        primary = manager_status(primary_pod(api))
        return {(r["name"], r["state"], r["ssl"], r["tlsVersion"]) for r in primary["replicas"]}

    replica = next(n for n in pods(api) if n != primary_pod(api)["metadata"]["name"])
    assert wait_until("the replica streaming", streaming, bool, timeout=60) == {
        (replica, "streaming", True, "TLSv1.3")
    }
    assert client_sql(api, pg_images, "SELECT 1") == (True, "1")  # verify-full, the same CA
