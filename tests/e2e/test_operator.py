"""The included operator against a real kube-apiserver + etcd, with its own least privilege.

Aspects, each on its own Cluster in a namespace that enforces Pod Security "restricted":
the operator (kopf, in-process through `kopf.testing.KopfRunner`) authenticates with its
ServiceAccount's token and the shipped ClusterRole, never as an admin; a Cluster that
references CloudNativePG's published ClusterImageCatalog gets `status.image` = that
catalog's digest and every per-cluster object is admitted (pods included); a catalog entry
change re-creates the instances one at a time, replicas first, primary last, each only
after the previous one is Ready (the test plays kubelet and sets Ready through the status
subresource); the superuser Secret follows enableSuperuserAccess; a missing major sets the
error phase and a Warning event and changes nothing else; the CRD's CEL rule refuses
imageName together with imageCatalogRef; the RBAC is least privilege (SubjectAccessReviews).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner
from operator_support import (
    CNPG,
    GROUP_VERSION,
    MANIFESTS,
    NAMESPACE,
    OPERATOR_IMAGE,
    OPERATOR_NS,
    OPERATOR_SA,
    PREFIX,
    can,
    catalog_image,
    catalog_ref,
    clusters_path,
    core,
    create_cluster,
    get_cluster,
    image_of,
    images,
    installed_manifests,
    instance_pods,
    load_all,
    mark_ready,
    patch,
    path_of,
    role_secret_names,
    running_operator,
    shipped_manifests,
    wait_for,
    wait_phase,
    wait_pods,
    wait_until,
    warning_events,
)

from pipeline.tools import controlplane
from pipeline.tools.controlplane import ControlPlaneSettings
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, resource_path

# isort: split
# operator_support put operator/ on sys.path: the operator is its own distribution.
from drydock_operator import reconcile, resources
from drydock_operator.config import OperatorSettings
from drydock_operator.model import parse_cluster

pytestmark = pytest.mark.e2e


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(admin: KubeAPI) -> Iterator[None]:
    """CRDs, the operator's namespace and RBAC (as shipped), a restricted test namespace."""
    crds, rbac = shipped_manifests()
    with installed_manifests(admin, crds, rbac, NAMESPACE):
        yield


@pytest.fixture(scope="module")
def operator(
    installed: None,
    control_plane_settings: ControlPlaneSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[KopfRunner]:
    """The operator, logged in with its own ServiceAccount token (not the admin's)."""
    cp = controlplane.up(control_plane_settings)
    with running_operator(cp, tmp_path_factory.mktemp("operator"), {}) as runner:
        yield runner


@pytest.fixture(scope="module")
def cnpg_catalog(admin: KubeAPI, installed: None) -> str:
    """CloudNativePG's own published ClusterImageCatalog, verbatim."""
    (doc,) = load_all(CNPG / "catalog-minimal-bookworm.yaml")
    admin.apply(path_of(doc), doc)
    return str(doc["metadata"]["name"])


# --- tests ----------------------------------------------------------------------------------


def test_cluster_runs_the_catalog_digest_with_all_objects_admitted(
    admin: KubeAPI, operator: KopfRunner, cnpg_catalog: str
) -> None:
    apparmor = {
        f"container.apparmor.security.beta.kubernetes.io/{c}": "runtime/default"
        for c in ("bootstrap-controller", "initdb", "join", "postgres")
    }
    create_cluster(
        admin,
        "pg",
        annotations=apparmor,
        instances=3,
        imageCatalogRef=catalog_ref(cnpg_catalog, 17),
    )
    digest = catalog_image(17)
    cluster = wait_until(
        "status.image",
        lambda: get_cluster(admin, "pg"),
        lambda c: bool(c.get("status", {}).get("image")),
    )
    assert cluster["status"]["image"] == digest
    assert "@sha256:" in digest
    assert cluster["status"]["targetPrimary"] == "pg-1"
    # The primary first; the replicas clone it, so they come once it is Ready.
    assert sorted(wait_pods(admin, "pg", 1)) == ["pg-1"]
    time.sleep(1)
    assert sorted(instance_pods(admin, "pg")) == ["pg-1"]
    mark_ready(admin, "pg-1")
    pods = wait_pods(admin, "pg", 3)
    assert sorted(pods) == ["pg-1", "pg-2", "pg-3"]
    assert {image_of(p) for p in pods.values()} == {digest}
    assert pods["pg-1"]["metadata"]["labels"][f"{PREFIX}/instanceRole"] == "primary"
    for name, pod in pods.items():
        init = [(c["name"], c["image"]) for c in pod["spec"]["initContainers"]]
        step = "initdb" if name == "pg-1" else "join"
        assert init == [("bootstrap-controller", OPERATOR_IMAGE), (step, digest)]
        names = {"bootstrap-controller", step, "postgres"}
        assert {k.rsplit("/", 1)[1] for k in pod["metadata"]["annotations"]} == names, (
            "AppArmor annotations only for the containers the pod has"
        )
    for name in ("pg-1", "pg-2", "pg-3"):
        assert admin.get(core("persistentvolumeclaims", name)) is not None
    assert admin.get(core("serviceaccounts", "pg")) is not None
    role = admin.get(resource_path("rbac.authorization.k8s.io/v1", "roles", "pg", NAMESPACE))
    assert role is not None
    expected = resources.role_rules(parse_cluster(cluster), OperatorSettings())
    assert role["rules"] == expected
    assert (
        admin.get(resource_path("rbac.authorization.k8s.io/v1", "rolebindings", "pg", NAMESPACE))
        is not None
    )
    for secret in ("pg-app", "pg-ca", "pg-server", "pg-replication"):
        assert admin.get(core("secrets", secret)) is not None, secret
    assert admin.get(core("secrets", "pg-superuser")) is None
    config = admin.get(core("configmaps", "pg-config")) or {}
    assert "ssl_min_protocol_version = 'TLSv1.3'" in config["data"]["postgresql.conf"]
    assert "password_encryption = 'scram-sha-256'" in config["data"]["postgresql.conf"]
    for svc in ("pg-rw", "pg-ro", "pg-r"):
        assert admin.get(core("services", svc)) is not None


def test_restricted_namespace_rejects_a_pod_that_is_not(admin: KubeAPI, installed: None) -> None:
    """The namespace really enforces "restricted", so admitted instance pods prove compliance."""
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-pod", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    with pytest.raises(KubeAPIError, match="restricted"):
        admin.create(core("pods"), bad)


def test_namespaced_image_catalog_change_reaches_its_cluster(
    admin: KubeAPI, operator: KopfRunner
) -> None:
    old, new = "registry.invalid/pg@sha256:" + "c" * 64, "registry.invalid/pg@sha256:" + "d" * 64
    catalog: dict[str, Any] = {
        "apiVersion": GROUP_VERSION,
        "kind": "ImageCatalog",
        "metadata": {"name": "local", "namespace": NAMESPACE},
        "spec": {"images": [{"major": 16, "image": old}]},
    }
    catalog_path = resource_path(GROUP_VERSION, "imagecatalogs", "local", NAMESPACE)
    admin.apply(catalog_path, catalog)
    create_cluster(
        admin, "local", instances=1, imageCatalogRef=catalog_ref("local", 16, "ImageCatalog")
    )
    wait_pods(admin, "local", 1)
    mark_ready(admin, "local-1")
    # The pod is created before the status is written, in the same reconcile: wait for both.
    wait_until(
        "status.image",
        lambda: get_cluster(admin, "local").get("status", {}).get("image"),
        old.__eq__,
    )
    catalog["spec"]["images"][0]["image"] = new
    admin.apply(catalog_path, catalog)
    wait_until("local-1 on the new image", lambda: images(admin, "local"), {"local-1": new}.__eq__)
    assert get_cluster(admin, "local")["status"]["image"] == new


def test_operator_pod_template_is_admitted_as_restricted(admin: KubeAPI, installed: None) -> None:
    """No kubelet runs the Deployment, so admit its pod template as a Pod directly."""
    (deployment,) = load_all(MANIFESTS / "deployment.yaml")
    template = deployment["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-template-check", "namespace": OPERATOR_NS},
        "spec": template["spec"],
    }
    path = resource_path("v1", "pods", namespace=OPERATOR_NS)
    created = admin.create(path, pod)
    assert created is not None
    admin.delete(resource_path("v1", "pods", "operator-template-check", OPERATOR_NS))


def test_superuser_secret_appears_and_disappears(admin: KubeAPI, operator: KopfRunner) -> None:
    create_cluster(
        admin, "su", instances=1, imageName="registry.invalid/pg:17", enableSuperuserAccess=True
    )
    secret = wait_for("su-superuser", lambda: admin.get(core("secrets", "su-superuser")))
    assert secret["type"] == "kubernetes.io/basic-auth"
    wait_until(
        "Role names su-superuser",
        lambda: role_secret_names(admin, "su"),
        lambda n: "su-superuser" in n,
    )
    patch(admin, clusters_path("su"), {"spec": {"enableSuperuserAccess": False}})
    wait_for("su-superuser gone", lambda: admin.get(core("secrets", "su-superuser")) is None)
    wait_until(
        "Role without su-superuser",
        lambda: role_secret_names(admin, "su"),
        lambda n: "su-app" in n and "su-superuser" not in n,
    )
    assert admin.get(core("secrets", "su-app")) is not None


def test_missing_major_sets_error_phase_warns_and_changes_nothing(
    admin: KubeAPI, operator: KopfRunner, cnpg_catalog: str
) -> None:
    create_cluster(admin, "nomajor", instances=1, imageCatalogRef=catalog_ref(cnpg_catalog, 19))
    cluster = wait_phase(admin, "nomajor", reconcile.PHASE_CATALOG_ERROR)
    assert "Cannot find major 19" in cluster["status"]["phaseReason"]
    assert "image" not in cluster["status"]
    (event,) = wait_for("Warning event", lambda: warning_events(admin, "nomajor"))
    assert event["reason"] == "DiscoverImage"
    assert "Cannot find major 19 in ClusterImageCatalog/" in event["message"]
    assert instance_pods(admin, "nomajor") == {}
    assert admin.get(core("secrets", "nomajor-app")) is None
    assert admin.get(core("serviceaccounts", "nomajor")) is None


def test_running_cluster_keeps_its_image_when_its_major_goes_missing(
    admin: KubeAPI, operator: KopfRunner, cnpg_catalog: str
) -> None:
    create_cluster(admin, "keep", instances=1, imageCatalogRef=catalog_ref(cnpg_catalog, 16))
    pods = wait_pods(admin, "keep", 1)
    mark_ready(admin, "keep-1")
    wait_for("status.image", lambda: get_cluster(admin, "keep").get("status", {}).get("image"))
    uid = pods["keep-1"]["metadata"]["uid"]
    patch(
        admin, clusters_path("keep"), {"spec": {"imageCatalogRef": catalog_ref(cnpg_catalog, 19)}}
    )
    cluster = wait_phase(admin, "keep", reconcile.PHASE_CATALOG_ERROR)
    assert cluster["status"]["image"] == catalog_image(16)
    wait_for("Warning event", lambda: warning_events(admin, "keep"))
    time.sleep(2)
    assert instance_pods(admin, "keep")["keep-1"]["metadata"]["uid"] == uid


def test_drift_is_repaired_and_config_follows_the_spec(
    admin: KubeAPI, operator: KopfRunner
) -> None:
    """A tampered Role is put back by the periodic resync (roles are not watched)."""
    create_cluster(admin, "drift", instances=1, imageName="registry.invalid/pg:17")
    role_path = resource_path("rbac.authorization.k8s.io/v1", "roles", "drift", NAMESPACE)
    role = wait_for("Role", lambda: admin.get(role_path))
    expected = role["rules"]
    wide = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}
    patch(admin, role_path, {"rules": [*expected, wide]})
    wait_until(
        "Role rules restored",
        lambda: (admin.get(role_path) or {}).get("rules"),
        expected.__eq__,
        timeout=20,
    )

    line = "hostssl app app 10.0.0.0/8 scram-sha-256"
    patch(admin, clusters_path("drift"), {"spec": {"postgresql": {"pg_hba": [line]}}})
    wait_until(
        "pg_hba line in the ConfigMap",
        lambda: (admin.get(core("configmaps", "drift-config")) or {}).get("data", {}),
        lambda data: line in data.get("pg_hba.conf", ""),
    )


@pytest.mark.parametrize(
    "spec",
    [
        {"imageName": "x", "imageCatalogRef": catalog_ref("c", 17)},
        # Neither image source is CloudNativePG's "the default image": the webhooks
        # decide it (test_operator_webhooks.py), not the schema.
        {"imageCatalogRef": catalog_ref("c", 17, kind="Secret")},
        {"imageName": "x", "postgresql": {"parameters": {"work_mem": "4MB", "port": "5433"}}},
        {"imageName": "x", "postgresql": {"parameters": {"Work_Mem": "4MB"}}},
    ],
    ids=["both", "not-a-catalog", "owned-parameter", "bad-parameter-name"],
)
def test_schema_refuses_ambiguous_image_sources(
    admin: KubeAPI, installed: None, spec: dict[str, Any]
) -> None:
    with pytest.raises(KubeAPIError) as err:
        create_cluster(admin, "invalid", **spec)
    assert err.value.status == 422


def test_least_privilege(admin: KubeAPI, operator: KopfRunner) -> None:
    cnpg = "postgresql.cnpg.io"
    op = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
    assert can(admin, op, "create", "pods")
    assert can(admin, op, "patch", "pods")  # the instanceRole label follows the primary
    assert can(admin, op, "watch", "clusterimagecatalogs", group=cnpg)
    assert not can(admin, op, "list", "secrets")
    assert not can(admin, op, "update", "clusterimagecatalogs", group=cnpg)
    assert not can(admin, op, "create", "deployments", group="apps")
    instance = f"system:serviceaccount:{NAMESPACE}:pg"
    role_path = resource_path("rbac.authorization.k8s.io/v1", "roles", "pg", NAMESPACE)
    wait_for("pg's Role", lambda: admin.get(role_path))
    assert can(admin, instance, "get", "secrets", name="pg-app")
    assert not can(admin, instance, "get", "secrets", name="su-app")
    assert not can(admin, instance, "list", "secrets")
    assert can(admin, instance, "patch", "clusters", group=cnpg, subresource="status", name="pg")
    assert not can(admin, instance, "get", "clusters", group=cnpg, name="roll")
    assert not can(admin, instance, "get", "clusterimagecatalogs", group=cnpg, namespace="")
