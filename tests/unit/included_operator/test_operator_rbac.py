"""The operator's RBAC, pinned: exactly these permissions, each with the reason it exists.

A wider ClusterRole (`pods/exec`, Secret `list`/`patch`, `bind`/`escalate` on roles, a
wildcard, a webhook configuration by any name) fails here, and so does a narrower one
(the e2e tests would then see 403s). To change a permission, change this table and say
why beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[3] / "operator" / "manifests"
G = "postgresql.cnpg.io"
RBAC = "rbac.authorization.k8s.io"
ADM = "admissionregistration.k8s.io"
VWC = "postgresql-operator-validating-webhook-configuration"
MWC = "postgresql-operator-mutating-webhook-configuration"

# (apiGroup, resource, verbs, resourceNames, reason)
CLUSTER_ROLE: list[tuple[str, str, str, str, str]] = [
    (G, "clusters", "get list watch", "", "kopf watches Clusters; the controller re-reads one"),
    (G, "clusters/status", "patch update", "", "status writes; granted to instances"),
    (G, "imagecatalogs", "get list watch", "", "watched; the referenced one is read"),
    (G, "clusterimagecatalogs", "get list watch", "", "watched; the referenced one is read"),
    (G, "backups", "get list delete", "", "granted to instances only (the guide's list)"),
    (G, "backups/status", "patch update", "", "granted to instances only"),
    ("", "pods", "list watch create delete patch", "", "instances: create, roll, role label"),
    ("", "persistentvolumeclaims", "create", "", "one claim per instance"),
    ("", "secrets", "get watch create delete", "", "credentials/certificates; never list"),
    ("", "secrets", "update", "", "renew certificates in place; move the CA key out of -ca"),
    ("", "configmaps", "get watch create update", "", "the PostgreSQL settings ConfigMap"),
    ("", "services", "get create", "", "rw/ro/r Services"),
    ("", "serviceaccounts", "get create", "", "the per-Cluster ServiceAccount"),
    (RBAC, "roles", "get create update", "", "the per-Cluster instance Role"),
    (RBAC, "rolebindings", "get create", "", "its binding"),
    ("", "events", "create patch", "", "warning events; granted to instances"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list watch", "", "kopf's CRD scan"),
    ("networking.k8s.io", "networkpolicies", "get create update delete", "", "spec.networkPolicy"),
    (ADM, "validatingwebhookconfigurations", "get patch", VWC, "inject CA and address"),
    (ADM, "mutatingwebhookconfigurations", "get patch", MWC, "inject CA and address"),
]
# The webhook CA's renewal in the operator's own namespace, by name.
NAMESPACE_ROLE = [("", "secrets", "update", "postgresql-operator-ca", "renew the webhook CA")]


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {
        (group, res, verb, name)
        for rule in rules
        for group in rule["apiGroups"]
        for res in rule["resources"]
        for verb in rule["verbs"]
        for name in rule.get("resourceNames") or [""]
    }


def expected(table: list[tuple[str, str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    return {(g, r, v, n) for g, r, verbs, n, _why in table for v in verbs.split()}


def shipped(kind: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text()) if d]
    (doc,) = [d for d in docs if d["kind"] == kind]
    found: dict[str, Any] = doc
    return found


def test_the_cluster_role_is_exactly_the_table() -> None:
    role = shipped("ClusterRole")
    assert role["metadata"]["name"] == "postgresql-operator-manager"
    held = grants(role["rules"])
    assert held - expected(CLUSTER_ROLE) == set(), "wider than the table"
    assert expected(CLUSTER_ROLE) - held == set(), "narrower than the table"


def test_the_namespace_role_only_renews_the_webhook_ca() -> None:
    role = shipped("Role")
    assert role["metadata"]["namespace"] == "postgresql-operator-system"
    assert grants(role["rules"]) == expected(NAMESPACE_ROLE)
    binding = shipped("RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert [s["name"] for s in binding["subjects"]] == ["postgresql-operator-manager"]


@pytest.mark.parametrize(
    "extra",
    [
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["update", "patch"]},
        {"apiGroups": [RBAC], "resources": ["roles"], "verbs": ["bind", "escalate"]},
        {"apiGroups": [ADM], "resources": ["validatingwebhookconfigurations"], "verbs": ["patch"]},
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
    ],
)
def test_a_widened_role_is_noticed(extra: dict[str, Any]) -> None:
    """The check above, fed a ClusterRole with one more rule, must fail."""
    rules = [*shipped("ClusterRole")["rules"], extra]
    assert grants(rules) - expected(CLUSTER_ROLE) != set()
