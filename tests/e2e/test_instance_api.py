"""The instance manager's API calls, as the Cluster's own ServiceAccount, on a real API server.

The manager's Kubernetes client (drydock_instance.kubeclient, plain HTTP/1.1 over TLS on
python3-minimal) runs here in-process with a token of the ServiceAccount the operator made
for the Cluster, bound to the instance Role the operator wrote, and nothing else.

Aspects: it reads the desired state (Cluster, ConfigMap, the app Secret and the
certificates) the operator created; it writes its Cluster's status (currentPrimary,
instancesReportedState) and posts events; the same token cannot read another Cluster's
Secret, the superuser Secret while access is off, list Secrets, change the Cluster's spec
or write another Cluster's status, so the Role is all it has.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kopf.testing import KopfRunner
from operator_support import (
    NAMESPACE,
    clusters_path,
    core,
    create_cluster,
    get_cluster,
    installed_manifests,
    running_operator,
    shipped_manifests,
    wait_for,
    wait_until,
)

from pipeline.tools import controlplane
from pipeline.tools.controlplane import ControlPlane, ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, load_kubeconfig

# isort: split
# operator_support put operator/ on sys.path: the manager ships with the operator.
from drydock_instance import kubeclient, sources
from drydock_instance.config import load

pytestmark = pytest.mark.e2e

IMAGE = "registry.invalid/postgresql@sha256:" + "1" * 64


@pytest.fixture(scope="module")
def plane(control_plane_settings: ControlPlaneSettings) -> ControlPlane:
    return controlplane.up(control_plane_settings)


@pytest.fixture(scope="module")
def admin(plane: ControlPlane) -> Iterator[KubeAPI]:
    with KubeAPI(load_kubeconfig(plane.kubeconfig)) as api:
        yield api


@pytest.fixture(scope="module")
def clusters(
    admin: KubeAPI, plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KopfRunner]:
    """Clusters `mine` and `theirs`, with everything the operator makes for them."""
    crds, rbac = shipped_manifests()
    with (
        installed_manifests(admin, crds, rbac, NAMESPACE),
        running_operator(plane, tmp_path_factory.mktemp("operator"), {}) as runner,
    ):
        for name in ("mine", "theirs"):
            create_cluster(admin, name, instances=1, imageName=IMAGE)
        for name in ("mine-replication", "theirs-replication"):
            secret = core("secrets", name)
            wait_for(name, lambda path=secret: admin.get(path))  # type: ignore[misc]
        yield runner


def manager_transport(plane: ControlPlane, workdir: Path, cluster: str) -> sources.KubeTransport:
    """The transport the manager of `<cluster>-1` would have in its pod."""
    token = controlplane.mint_token(plane.kubeconfig, NAMESPACE, cluster, create=False)
    (workdir / "token").write_text(token)
    (workdir / "ca.crt").write_bytes(plane.ca_file.read_bytes())
    server = urlsplit(plane.server)
    env = {
        "KUBERNETES_SERVICE_HOST": str(server.hostname),
        "KUBERNETES_SERVICE_PORT": str(server.port),
        "DRYDOCK_SERVICEACCOUNT_DIR": str(workdir),
    }
    settings = load(
        {
            "PGDATA": "/var/lib/postgresql/data/pgdata",
            "POD_NAME": f"{cluster}-1",
            "CLUSTER_NAME": cluster,
            "NAMESPACE": NAMESPACE,
        }
    )
    return sources.KubeTransport(kubeclient.KubeClient.in_cluster(env), settings)


def test_the_manager_reads_what_the_operator_made(
    admin: KubeAPI, plane: ControlPlane, clusters: KopfRunner, tmp_path: Path
) -> None:
    transport = manager_transport(plane, tmp_path, "mine")
    desired = sources.fetch(transport, transport.settings)
    secret = admin.get(core("secrets", "mine-app")) or {}
    assert desired.app_password == base64.b64decode(secret["data"]["password"]).decode()
    assert (desired.app_user, desired.app_database) == ("app", "app")
    assert desired.target_primary == "mine-1"
    assert desired.superuser_password is None
    assert desired.certs.ca.startswith("-----BEGIN CERTIFICATE-----")
    assert desired.certs.client_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert "local all all peer" in desired.hba
    assert "ssl_min_protocol_version = 'TLSv1.3'" in desired.custom_conf


def test_the_manager_writes_its_clusters_status_and_events(
    admin: KubeAPI, plane: ControlPlane, clusters: KopfRunner, tmp_path: Path
) -> None:
    transport = manager_transport(plane, tmp_path, "mine")
    transport.patch_status(
        {
            "status": {
                "currentPrimary": "mine-1",
                "instancesReportedState": {"mine-1": {"isPrimary": True, "timeLineID": 1}},
            }
        }
    )
    status = get_cluster(admin, "mine")["status"]
    assert status["currentPrimary"] == "mine-1"
    assert status["instancesReportedState"] == {"mine-1": {"isPrimary": True, "timeLineID": 1}}
    involved = sources.cluster_reference(transport, transport.settings)
    transport.post_event(sources.event(involved, transport.settings, "Normal", "Promoted", "ok"))
    events = admin.request("GET", core("events")).json()["items"]
    assert any(e["reason"] == "Promoted" and e["involvedObject"]["name"] == "mine" for e in events)
    # The operator, reconciling meanwhile, leaves the manager's fields alone.
    wait_until(
        "a reconcile",
        lambda: get_cluster(admin, "mine")["status"],
        lambda s: s.get("targetPrimary") == "mine-1",
    )
    assert get_cluster(admin, "mine")["status"]["currentPrimary"] == "mine-1"


@pytest.mark.parametrize(
    ("method", "path_of", "body"),
    [
        ("GET", lambda: core("secrets", "theirs-app"), None),
        ("GET", lambda: core("secrets", "mine-superuser"), None),
        ("GET", lambda: core("secrets"), None),
        ("GET", lambda: clusters_path("theirs"), None),
        ("PATCH", lambda: clusters_path("mine"), {"spec": {"instances": 5}}),
        ("PATCH", lambda: clusters_path("theirs") + "/status", {"status": {"phase": "x"}}),
        ("PATCH", lambda: core("configmaps", "mine-config"), {"data": {"pg_hba.conf": ""}}),
        ("DELETE", lambda: core("pods", "mine-1"), None),
    ],
    ids=[
        "other-clusters-secret",
        "superuser-secret-while-off",
        "list-secrets",
        "other-cluster",
        "own-spec",
        "other-clusters-status",
        "write-own-configmap",
        "delete-pods",
    ],
)
def test_nothing_beyond_the_instance_role(
    plane: ControlPlane,
    clusters: KopfRunner,
    tmp_path: Path,
    method: str,
    path_of: object,
    body: dict[str, object] | None,
) -> None:
    client = manager_transport(plane, tmp_path, "mine").client
    path = path_of()  # type: ignore[operator]
    with pytest.raises(kubeclient.ApiError) as err:
        client.request(method, path, body=body, content_type=sources.MERGE_PATCH)
    assert err.value.status == 403, err.value
