"""Helpers for the operator's e2e tests: paths, a pretend kubelet, RBAC questions, log checks."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import kopf
import pytest
import yaml
from kopf.testing import KopfRunner

from pipeline.tools import controlplane
from pipeline.tools.controlplane import ControlPlane
from pipeline.tools.kubeapi import KubeAPI, resource_path

REPO = Path(__file__).parents[2]
if str(REPO / "operator") not in sys.path:
    sys.path.insert(0, str(REPO / "operator"))  # the operator is its own small distribution

CNPG = REPO / "tests" / "fixtures" / "cnpg"
MANIFESTS = REPO / "operator" / "manifests"
NAMESPACE = "e2e-operator"
OPERATOR_NS = "postgresql-operator-system"
OPERATOR_SA = "postgresql-operator-manager"
GROUP_VERSION = "postgresql.cnpg.io/v1"
CRDS = resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions")
MERGE = "application/merge-patch+json"
PREFIX = "cnpg.io"
TIMEOUT = 60.0
APPARMOR = "container.apparmor.security.beta.kubernetes.io/postgres"
# The image instance pods' bootstrap-controller runs. On the control plane alone no pod
# runs, so it need not exist; tests on the real node pass a published one.
OPERATOR_IMAGE = "registry.invalid/postgresql-operator@sha256:" + "0" * 64

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def wait_until(
    what: str, probe: Callable[[], T], done: Callable[[T], bool], timeout: float = TIMEOUT
) -> T:
    """Poll `probe` until `done` accepts its value; return that value."""
    return wait_for(what, lambda: (value,) if done(value := probe()) else None, timeout)[0]


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def path_of(doc: dict[str, Any]) -> str:
    plural = {
        "Namespace": "namespaces",
        "ServiceAccount": "serviceaccounts",
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "Service": "services",
        "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
        "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
        "CustomResourceDefinition": "customresourcedefinitions",
        "ClusterImageCatalog": "clusterimagecatalogs",
        "Cluster": "clusters",
    }[doc["kind"]]
    meta = doc["metadata"]
    return resource_path(doc["apiVersion"], plural, meta["name"], meta.get("namespace"))


def patch(api: KubeAPI, path: str, body: dict[str, Any]) -> None:
    api.request("PATCH", path, body=json.dumps(body).encode(), content_type=MERGE)


EXPECTED_WARNINGS = (
    "OS signals are ignored",  # KopfRunner runs kopf in a thread
    "Cannot find major 19",  # the error-phase tests ask for it
    "Cannot get ClusterImageCatalog/e2e-webhooks-absent",  # test_operator_webhooks: no pods
    # kopf logs each admission refusal as "Webhook '...' failed permanently: <message>";
    # the operator's refusals read "<Kind> '<name>' is refused: ..." (admission.message).
    "' is refused: ",
)


def operator_problems(output: str) -> list[str]:
    """Warnings and errors the operator (kopf or drydock_operator) logged unexpectedly.

    A permission missing from the shipped ClusterRole shows up here as a 403 from kopf's
    watcher or as "reconcile failed" from the controller.
    """
    return [
        line
        for line in output.splitlines()
        if ("[WARNING" in line or "[ERROR" in line or "[CRITICAL" in line)
        and ("kopf" in line or "drydock_operator" in line)
        and not any(expected in line for expected in EXPECTED_WARNINGS)
    ]


def clusters_path(name: str | None = None) -> str:
    return resource_path(GROUP_VERSION, "clusters", name, NAMESPACE)


def get_cluster(admin: KubeAPI, name: str) -> dict[str, Any]:
    return admin.get(clusters_path(name)) or {}


def create_cluster(
    admin: KubeAPI, name: str, annotations: dict[str, str] | None = None, **spec: Any
) -> None:
    body = {
        "apiVersion": GROUP_VERSION,
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations or {}},
        "spec": spec,
    }
    admin.create(clusters_path(), body)


def core(plural: str, name: str | None = None) -> str:
    return resource_path("v1", plural, name, NAMESPACE)


def wait_phase(admin: KubeAPI, name: str, phase: str) -> dict[str, Any]:
    """The Cluster once its status.phase is `phase`."""
    return wait_until(
        f"{name} in phase {phase!r}",
        lambda: get_cluster(admin, name),
        lambda c: bool(c.get("status", {}).get("phase") == phase),
    )


def wait_pods(admin: KubeAPI, cluster: str, count: int) -> dict[str, dict[str, Any]]:
    return wait_until(
        f"{count} pods of {cluster}",
        lambda: instance_pods(admin, cluster),
        lambda p: len(p) == count,
    )


def role_secret_names(admin: KubeAPI, cluster: str) -> list[str]:
    """The Secrets a Cluster's instance Role lets it read (empty until the Role exists)."""
    role = admin.get(resource_path("rbac.authorization.k8s.io/v1", "roles", cluster, NAMESPACE))
    for rule in (role or {}).get("rules", []):
        if rule["resources"] == ["secrets"]:
            return list(rule.get("resourceNames", []))
    return []


def instance_pods(admin: KubeAPI, cluster: str) -> dict[str, dict[str, Any]]:
    listing = admin.request(
        "GET", core("pods"), params={"labelSelector": f"{PREFIX}/cluster={cluster}"}
    ).json()
    return {p["metadata"]["name"]: p for p in listing["items"]}


def image_of(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["image"])


def images(admin: KubeAPI, cluster: str) -> dict[str, str]:
    return {name: image_of(pod) for name, pod in instance_pods(admin, cluster).items()}


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def mark_ready(admin: KubeAPI, name: str) -> None:
    """What a kubelet would report once PostgreSQL answers: Ready=True, via pods/status."""
    patch(
        admin,
        core("pods", name) + "/status",
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    )


def catalog_image(major: int) -> str:
    (doc,) = load_all(CNPG / "catalog-minimal-bookworm.yaml")
    return next(str(e["image"]) for e in doc["spec"]["images"] if e["major"] == major)


def catalog_ref(name: str, major: int, kind: str = "ClusterImageCatalog") -> dict[str, Any]:
    return {"apiGroup": "postgresql.cnpg.io", "kind": kind, "name": name, "major": major}


def warning_events(admin: KubeAPI, cluster: str) -> list[dict[str, Any]]:
    items = admin.request("GET", core("events")).json()["items"]
    return [
        e
        for e in items
        if e["involvedObject"].get("name") == cluster
        and e["involvedObject"].get("kind") == "Cluster"
        and e["type"] == "Warning"
    ]


def can(
    admin: KubeAPI,
    user: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    subresource: str = "",
    name: str = "",
    namespace: str = NAMESPACE,
) -> bool:
    """Ask the API server's authorizer (SubjectAccessReview) whether `user` may do this."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": group,
                "resource": resource,
                "subresource": subresource,
                "name": name,
            },
        },
    }
    path = resource_path("authorization.k8s.io/v1", "subjectaccessreviews")
    answer = admin.create(path, review) or {}
    return bool(answer.get("status", {}).get("allowed"))


def shipped_manifests(group: str = "postgresql.cnpg.io") -> tuple[list[Any], list[Any]]:
    """The CRDs and the operator's Namespace + RBAC as shipped, optionally for another group.

    For another group the ClusterRole and its binding are renamed, so both sets can live
    in one API server (the CRD names differ by group already).
    """

    def docs(path: Path) -> list[dict[str, Any]]:
        text = path.read_text().replace("postgresql.cnpg.io", group)
        return [d for d in yaml.safe_load_all(text) if d]

    crds = [d for p in sorted((MANIFESTS / "crds").glob("*.yaml")) for d in docs(p)]
    crds = [d for d in crds if d["kind"] == "CustomResourceDefinition"]
    assert {d["spec"]["names"]["kind"] for d in crds} == {
        "Cluster",
        "ImageCatalog",
        "ClusterImageCatalog",
    }
    rbac = docs(MANIFESTS / "namespace.yaml") + docs(MANIFESTS / "rbac.yaml")
    if group != "postgresql.cnpg.io":
        for doc in rbac:
            if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                doc["metadata"]["name"] += f"-{group}"
            if doc["kind"] == "ClusterRoleBinding":
                doc["roleRef"]["name"] += f"-{group}"
    return crds, rbac


@contextmanager
def installed_manifests(
    admin: KubeAPI, crds: list[Any], rbac: list[Any], namespace: str
) -> Iterator[None]:
    """Apply CRDs and RBAC and a namespace enforcing "restricted"; remove the CRDs after."""
    for doc in crds:
        existing = admin.get(path_of(doc)) or {}
        if existing.get("metadata", {}).get("deletionTimestamp"):
            admin.wait_gone(path_of(doc), timeout=120)  # another module's teardown
        admin.apply(path_of(doc), doc)
    for doc in crds:
        admin.wait_crd_established(doc["metadata"]["name"])
    for doc in rbac:
        admin.apply(path_of(doc), doc)
    admin.apply(
        resource_path("v1", "namespaces", namespace),
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
        },
    )
    yield
    for doc in crds:
        admin.delete(path_of(doc))
    for doc in crds:
        admin.wait_gone(path_of(doc), timeout=120)


@contextmanager
def running_operator(
    cp: ControlPlane, workdir: Path, extra_env: Mapping[str, str]
) -> Iterator[KopfRunner]:
    """Run the operator in-process with a token of its own ServiceAccount (not the admin's).

    On exit, any warning or error it logged fails the test; its log stays in `workdir`.
    """
    from drydock_operator import handlers
    from drydock_operator.config import load_settings

    token = controlplane.mint_token(cp.kubeconfig, OPERATOR_NS, OPERATOR_SA, create=False)
    assert token not in cp.kubeconfig.read_text(), "the operator must not run as the admin"
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(controlplane.kubeconfig_text(cp.server, cp.ca_file.read_bytes(), token))
    env = {
        "KUBECONFIG": str(kubeconfig),
        "DRYDOCK_OPERATOR_RESYNC_SECONDS": "5",
        "DRYDOCK_OPERATOR_IMAGE": OPERATOR_IMAGE,
        # Any free loopback port: several operators (and other helpers' tests) share a host.
        "DRYDOCK_OPERATOR_METRICS_BIND_ADDRESS": "127.0.0.1:0",
        # The API server runs on the host: it reaches the in-process webhook server there,
        # on a free port (helpers share the machine).
        "DRYDOCK_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
        "DRYDOCK_OPERATOR_WEBHOOK_PORT": "0",
        **extra_env,
    }
    registry = kopf.OperatorRegistry()
    handlers.register(registry, load_settings(env))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        args = ["run", "--standalone", "--all-namespaces", "--verbose"]
        with KopfRunner(args, registry=registry, timeout=60) as runner:
            yield runner
    (workdir / "operator.log").write_text(runner.output)  # kept by pytest for post-mortems
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert operator_problems(runner.output) == []
