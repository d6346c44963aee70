"""Clusters that really run PostgreSQL: the operator, its instance manager and the real node.

One 3-instance Cluster `pg` from the `postgresql-minimal-bookworm` ClusterImageCatalog
(major 15, the operand Drydock builds, pulled by digest from the local registry), in a
namespace that enforces Pod Security "restricted". The operator runs in-process with its
own ServiceAccount token, polls the instance managers on port 8000 from the host (which
routes the node's pods), and is given the operator image the pods' bootstrap-controller
copies the manager from. The tests run in order on the same Cluster.

Aspects (issue 13's "Done when"): the Cluster becomes healthy with the guide's containers;
a client on `pg-rw` with the `pg-app` credentials gets TLS 1.3 and a TLS 1.2-only client is
refused; the primary's pg_stat_replication shows both replicas streaming over TLS as
streaming_replica; `postgres` cannot log in while superuser access is off and can once it
is on; a pg_hba line takes effect without a restart and stops working once removed; a new
digest in the catalog rolls the Cluster (replicas one at a time, a switchover, then the old
primary) with the data intact; a deleted primary is replaced by a promoted replica and
comes back as a replica.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from node_support import RESTRICTED, namespace
from operator_support import (
    installed_manifests,
    patch,
    path_of,
    running_operator,
    shipped_manifests,
    wait_for,
    wait_until,
)
from pg_support import (
    CATALOG,
    Images,
    manager_status,
    metrics,
    new_digest,
    psql,
    temporary_secret,
    wait_healthy,
)

from pipeline.tools.kubeapi import KubeAPI, resource_path
from pipeline.tools.node import Node

pytestmark = pytest.mark.e2e

NS = "e2e-pg"
GROUP_VERSION = "postgresql.cnpg.io/v1"
HEALTHY_TIMEOUT = 420.0
ROLL_TIMEOUT = 420.0


@pytest.fixture(scope="module")
def images(pg_images: Images) -> Images:
    return pg_images


def catalog(image: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "ClusterImageCatalog",
        "metadata": {"name": CATALOG},
        "spec": {"images": [{"major": 15, "image": image}]},
    }


@pytest.fixture(scope="module")
def operator(
    api: KubeAPI, started: Node, images: Images, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KopfRunner]:
    crds, rbac = shipped_manifests()
    with installed_manifests(api, crds, rbac, NS):
        namespace(api, NS, RESTRICTED)
        doc = catalog(images.operand)
        api.apply(path_of(doc), doc)
        extra = {"DRYDOCK_OPERATOR_IMAGE": images.operator}
        workdir = tmp_path_factory.mktemp("operator")
        with running_operator(started.control_plane, workdir, extra) as runner:
            yield runner


def cluster_path(name: str) -> str:
    return resource_path(GROUP_VERSION, "clusters", name, NS)


def get_cluster(api: KubeAPI, name: str) -> dict[str, Any]:
    return api.get(cluster_path(name)) or {}


def pods(api: KubeAPI, cluster: str = "pg") -> dict[str, dict[str, Any]]:
    listing = api.request(
        "GET",
        resource_path("v1", "pods", namespace=NS),
        params={"labelSelector": f"cnpg.io/cluster={cluster}"},
    ).json()
    return {p["metadata"]["name"]: p for p in listing["items"]}


@pytest.fixture(scope="module")
def pg(api: KubeAPI, operator: KopfRunner, images: Images) -> dict[str, Any]:
    api.create(
        resource_path(GROUP_VERSION, "clusters", namespace=NS),
        {
            "apiVersion": GROUP_VERSION,
            "kind": "Cluster",
            "metadata": {"name": "pg", "namespace": NS},
            "spec": {
                "instances": 3,
                "imageCatalogRef": {
                    "apiGroup": "postgresql.cnpg.io",
                    "kind": "ClusterImageCatalog",
                    "name": CATALOG,
                    "major": 15,
                },
                "storage": {"size": "256Mi"},
            },
        },
    )
    return wait_healthy(lambda n: get_cluster(api, n), "pg", images.operand, 3, HEALTHY_TIMEOUT)


def app_sql(api: KubeAPI, images: Images, sql: str, **kw: Any) -> tuple[bool, str]:
    return psql(api, NS, images.operand, sql, secret="pg-app", **kw)


def primary_pod(api: KubeAPI) -> dict[str, Any]:
    (found,) = [
        p
        for p in pods(api).values()
        if p["metadata"]["labels"]["cnpg.io/instanceRole"] == "primary"
    ]
    return found


# --- tests ----------------------------------------------------------------------------------


def test_three_instances_run_as_the_guide_describes(
    api: KubeAPI, pg: dict[str, Any], images: Images
) -> None:
    assert pg["status"]["currentPrimary"] == "pg-1"  # written by pg-1's instance manager
    assert set(pg["status"]["instancesReportedState"]) == {"pg-1", "pg-2", "pg-3"}
    found = pods(api)
    assert sorted(found) == ["pg-1", "pg-2", "pg-3"]
    digest = images.operand.split("@", 1)[1]
    for name, pod in found.items():
        init = [c["name"] for c in pod["spec"]["initContainers"]]
        assert init == ["bootstrap-controller", "initdb" if name == "pg-1" else "join"]
        assert pod["spec"]["initContainers"][0]["image"] == images.operator
        (container,) = pod["status"]["containerStatuses"]
        assert container["name"] == "postgres" and container["ready"] is True
        assert container["imageID"].endswith(digest), container["imageID"]
        ctx = pod["spec"]["containers"][0]["securityContext"]
        assert (ctx["runAsUser"], ctx["readOnlyRootFilesystem"]) == (26, True)
        status = manager_status(pod)
        assert status["ready"] is True
        assert status["isPrimary"] is (name == "pg-1")


def test_app_client_on_pg_rw_gets_tls13_and_a_tls12_client_is_refused(
    api: KubeAPI, pg: dict[str, Any], images: Images
) -> None:
    ok, out = app_sql(api, images, "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert (ok, out) == (True, "TLSv1.3")
    ok, out = app_sql(api, images, "SELECT 1", extra="ssl_max_protocol_version=TLSv1.2")
    assert not ok
    assert "protocol version" in out or "unsupported protocol" in out, out


def test_both_replicas_stream_from_the_primary_over_tls(
    api: KubeAPI, pg: dict[str, Any], images: Images
) -> None:
    primary = manager_status(primary_pod(api))
    streams = {(r["name"], r["state"], r["ssl"], r["tlsVersion"]) for r in primary["replicas"]}
    assert streams == {
        ("pg-2", "streaming", True, "TLSv1.3"),
        ("pg-3", "streaming", True, "TLSv1.3"),
    }
    assert 'cnpg_pg_replication_streaming_replicas{cluster="pg",pod="pg-1"} 2' in metrics(
        primary_pod(api)
    )


def test_postgres_logs_in_only_while_superuser_access_is_on(
    api: KubeAPI, pg: dict[str, Any], images: Images
) -> None:
    guess = temporary_secret(api, NS, {"username": "postgres", "password": "guess"})
    ok, out = psql(api, NS, images.operand, "SELECT 1", secret=guess, dbname="postgres")
    assert not ok and "password authentication failed" in out, out
    assert api.get(resource_path("v1", "secrets", "pg-superuser", NS)) is None

    patch(api, cluster_path("pg"), {"spec": {"enableSuperuserAccess": True}})
    wait_for("pg-superuser", lambda: api.get(resource_path("v1", "secrets", "pg-superuser", NS)))
    replication = (
        "SELECT string_agg(r.application_name || ':' || r.state || ':' || s.ssl || ':' "
        "|| s.version || ':' || r.usename, ',' ORDER BY r.application_name) "
        "FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid"
    )

    def as_superuser() -> tuple[bool, str]:
        return psql(api, NS, images.operand, replication, secret="pg-superuser", dbname="postgres")

    ok, out = wait_until("postgres logs in", as_superuser, lambda r: r[0], timeout=60)
    assert out == (
        "pg-2:streaming:true:TLSv1.3:streaming_replica,pg-3:streaming:true:TLSv1.3:streaming_replica"
    )

    patch(api, cluster_path("pg"), {"spec": {"enableSuperuserAccess": False}})
    wait_for(
        "pg-superuser deleted",
        lambda: api.get(resource_path("v1", "secrets", "pg-superuser", NS)) is None,
    )
    wait_until(
        "postgres refused again",
        lambda: psql(api, NS, images.operand, "SELECT 1", secret=guess, dbname="postgres"),
        lambda r: not r[0] and "password authentication failed" in r[1],
        timeout=60,
    )


def test_a_pg_hba_line_takes_effect_without_a_restart_and_goes_when_removed(
    api: KubeAPI, pg: dict[str, Any], images: Images
) -> None:
    started = manager_status(primary_pod(api))["postmasterStartTime"]
    path = cluster_path("pg")
    patch(api, path, {"spec": {"postgresql": {"pg_hba": ["hostssl app app all reject"]}}})
    wait_until(
        "the reject line in force",
        lambda: app_sql(api, images, "SELECT 1"),
        lambda r: not r[0] and "rejects connection" in r[1],
        timeout=60,
    )
    patch(api, path, {"spec": {"postgresql": {"pg_hba": None}}})
    wait_until("app back in", lambda: app_sql(api, images, "SELECT 1"), lambda r: r[0], 60)
    assert manager_status(primary_pod(api))["postmasterStartTime"] == started


def test_a_new_digest_rolls_the_cluster_with_its_data(
    api: KubeAPI, pg: dict[str, Any], images: Images, tmp_path: Path
) -> None:
    ok, out = app_sql(
        api,
        images,
        "CREATE TABLE IF NOT EXISTS t (v text); INSERT INTO t SELECT 'row' || g "
        "FROM generate_series(1, 1000) g; SELECT count(*) FROM t",
    )
    assert (ok, out) == (True, "1000"), out
    uids = {n: p["metadata"]["uid"] for n, p in pods(api).items()}
    rebuilt = new_digest(images, tmp_path, str(int(time.time())))
    doc = catalog(rebuilt)
    api.apply(path_of(doc), doc)

    steps: list[str] = []  # "pg-3" re-created, "->pg-2" switchover, in the order seen
    deadline = time.monotonic() + ROLL_TIMEOUT
    while True:
        assert time.monotonic() < deadline, f"roll stalled after {steps}"
        current = pods(api)
        for name, pod in current.items():
            if pod["metadata"]["uid"] != uids.get(name) and name not in steps:
                steps.append(name)
        gone = [
            n for n in uids if n not in current or current[n]["metadata"].get("deletionTimestamp")
        ]
        assert len(gone) <= 1, f"two instances gone at once: {gone}"
        status = get_cluster(api, "pg").get("status", {})
        target = status.get("targetPrimary")
        if target and target != "pg-1" and f"->{target}" not in steps:
            steps.append(f"->{target}")
        if (
            len([s for s in steps if not s.startswith("->")]) == 3
            and status.get("phase") == "Cluster in healthy state"
            and status.get("readyInstances") == 3
        ):
            break
        time.sleep(0.3)
    # Replicas one at a time, a switchover to an up-to-date replica (the most advanced by
    # the WAL position its manager reports), then the old primary.
    assert steps[:2] == ["pg-3", "pg-2"] and steps[3:] == ["pg-1"], steps
    assert steps[2] in ("->pg-2", "->pg-3"), steps
    digest = rebuilt.split("@", 1)[1]
    assert all(
        p["status"]["containerStatuses"][0]["imageID"].endswith(digest) for p in pods(api).values()
    )
    assert get_cluster(api, "pg")["status"]["currentPrimary"] == steps[2][2:]
    assert app_sql(api, images, "SELECT count(*) FROM t") == (True, "1000")
    assert app_sql(api, images, "SELECT count(*) FROM t", host="pg-ro") == (True, "1000")


def test_a_deleted_primary_is_replaced_and_rejoins_as_a_replica(
    api: KubeAPI, pg: dict[str, Any], images: Images
) -> None:
    old = get_cluster(api, "pg")["status"]["currentPrimary"]
    assert app_sql(api, images, "INSERT INTO t VALUES ('after-roll')")[0]
    api.delete(resource_path("v1", "pods", old, NS))
    cluster = wait_until(
        "a new primary",
        lambda: get_cluster(api, "pg"),
        lambda c: c.get("status", {}).get("currentPrimary") not in (None, old),
        timeout=180,
    )
    new = cluster["status"]["currentPrimary"]
    cluster = wait_healthy(
        lambda n: get_cluster(api, n), "pg", cluster["status"]["image"], 3, HEALTHY_TIMEOUT
    )
    rejoined = pods(api)[old]
    assert rejoined["metadata"]["labels"]["cnpg.io/instanceRole"] == "replica"
    assert manager_status(rejoined)["walReceiver"] == "streaming"
    assert manager_status(pods(api)[new])["isPrimary"] is True
    assert app_sql(api, images, "SELECT count(*) FROM t") == (True, "1001")
    assert app_sql(api, images, "INSERT INTO t VALUES ('after-failover')")[0]


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )
