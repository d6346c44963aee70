"""The operator with DRYDOCK_OPERATOR_API_GROUP=postgresql.k8s.enterprisedb.io, end to end.

Aspects: the same CRDs and RBAC with the group renamed are served next to nothing else;
the operator, on its own ServiceAccount token, resolves a ClusterImageCatalog of that
group into `status.image`, labels instances `k8s.enterprisedb.io/...` and writes an
instance Role for that group. Proves the switch is one environment variable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kopf.testing import KopfRunner
from operator_support import (
    installed_manifests,
    path_of,
    running_operator,
    shipped_manifests,
    wait_for,
)

from pipeline.tools import controlplane
from pipeline.tools.controlplane import ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, resource_path

pytestmark = pytest.mark.e2e

EDB = "postgresql.k8s.enterprisedb.io"
NAMESPACE = "e2e-operator-edb"
IMAGE = "registry.invalid/edb-postgres@sha256:" + "e" * 64


@pytest.fixture(scope="module")
def edb_operator(
    admin: KubeAPI,
    control_plane_settings: ControlPlaneSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KopfRunner]:
    crds, rbac = shipped_manifests(EDB)
    assert {d["spec"]["group"] for d in crds} == {EDB}
    with installed_manifests(admin, crds, rbac, NAMESPACE):
        cp = controlplane.up(control_plane_settings)
        workdir = tmp_path_factory.mktemp("operator-edb")
        with running_operator(cp, workdir, {"DRYDOCK_OPERATOR_API_GROUP": EDB}) as runner:
            yield runner


def test_enterprisedb_group_end_to_end(admin: KubeAPI, edb_operator: KopfRunner) -> None:
    catalog = {
        "apiVersion": f"{EDB}/v1",
        "kind": "ClusterImageCatalog",
        "metadata": {"name": "edb-catalog"},
        "spec": {"images": [{"major": 17, "image": IMAGE}]},
    }
    admin.apply(path_of(catalog), catalog)
    cluster_path = resource_path(f"{EDB}/v1", "clusters", "edb", NAMESPACE)
    admin.create(
        resource_path(f"{EDB}/v1", "clusters", namespace=NAMESPACE),
        {
            "apiVersion": f"{EDB}/v1",
            "kind": "Cluster",
            "metadata": {"name": "edb", "namespace": NAMESPACE},
            "spec": {
                "instances": 1,
                "imageCatalogRef": {
                    "apiGroup": EDB,
                    "kind": "ClusterImageCatalog",
                    "name": "edb-catalog",
                    "major": 17,
                },
            },
        },
    )
    wait_for(
        "status.image",
        lambda: (admin.get(cluster_path) or {}).get("status", {}).get("image") == IMAGE,
    )
    pod = wait_for("edb-1", lambda: admin.get(resource_path("v1", "pods", "edb-1", NAMESPACE)))
    assert pod["metadata"]["labels"]["k8s.enterprisedb.io/cluster"] == "edb"
    assert pod["metadata"]["ownerReferences"][0]["apiVersion"] == f"{EDB}/v1"
    role = admin.get(resource_path("rbac.authorization.k8s.io/v1", "roles", "edb", NAMESPACE))
    assert role is not None
    assert {g for rule in role["rules"] for g in rule["apiGroups"]} == {"", EDB}
