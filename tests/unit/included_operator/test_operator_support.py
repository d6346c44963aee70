"""Settings, certificates, kopf registration and the manifests shipped with the operator.

Aspects: the API group switch and its validation; the CA signs a server certificate
valid for every service name and a replication client certificate; passwords are long
and random; handlers register for the configured group; the Cluster CRD enforces
imageName XOR imageCatalogRef and has a status subresource; the operator's ClusterRole
holds everything it grants to instances (no RBAC escalation), and its namespace and
Deployment are Pod Security "restricted".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from conftest import REPO
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from drydock_operator import handlers, pki, resources
from drydock_operator.config import (
    CNPG_GROUP,
    EDB_GROUP,
    OperatorSettings,
    SettingsError,
    load_settings,
)
from drydock_operator.model import parse_cluster
from operator_samples import cluster_body

MANIFESTS = REPO / "operator" / "manifests"


def test_settings_default_to_cnpg_and_switch_to_edb() -> None:
    assert load_settings({}) == OperatorSettings()
    assert load_settings({}).api_group == CNPG_GROUP
    assert load_settings({}).label_prefix == "cnpg.io"
    edb = load_settings({"DRYDOCK_OPERATOR_API_GROUP": EDB_GROUP})
    assert (edb.api_group, edb.label_prefix) == (EDB_GROUP, "k8s.enterprisedb.io")
    assert load_settings({"DRYDOCK_OPERATOR_WORKERS": "8"}).workers == 8


@pytest.mark.parametrize(
    "env",
    [
        {"DRYDOCK_OPERATOR_API_GROUP": "example.com"},
        {"DRYDOCK_OPERATOR_REQUEST_TIMEOUT": "0"},
        {"DRYDOCK_OPERATOR_RESYNC_SECONDS": "soon"},
        {"DRYDOCK_OPERATOR_WORKERS": "0"},
        {"DRYDOCK_OPERATOR_WORKERS": "many"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        load_settings(env)


def test_passwords_are_long_and_fresh() -> None:
    passwords = {pki.new_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(len(p) >= 40 for p in passwords)


def test_ca_signs_server_and_replication_certificates() -> None:
    c = parse_cluster(cluster_body())
    ca = pki.new_ca("pg.db")
    server = pki.new_server_cert(ca, resources.server_dns_names(c))
    client = pki.new_client_cert(ca, "streaming_replica")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.encode())
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ca_key = ca_cert.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    for pair, usage in (
        (server, ExtendedKeyUsageOID.SERVER_AUTH),
        (client, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        cert = x509.load_pem_x509_certificate(pair.cert_pem.encode())
        cert.verify_directly_issued_by(ca_cert)
        assert usage in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert "PRIVATE KEY" in pair.key_pem
    server_cert = x509.load_pem_x509_certificate(server.cert_pem.encode())
    sans = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = sans.get_values_for_type(x509.DNSName)
    assert {"pg-rw", "pg-rw.db.svc", "pg-ro.db.svc.cluster.local", "pg-r.db"} <= set(names)
    client_cert = x509.load_pem_x509_certificate(client.cert_pem.encode())
    cn = client_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "streaming_replica"


def watched(registry: kopf.OperatorRegistry) -> set[tuple[str, str]]:
    return {
        (h.selector.group or "", str(h.selector.plural or h.selector.any_name or ""))
        for h in registry._watching.get_all_handlers()
        if h.selector is not None
    }


@pytest.mark.parametrize("group", [CNPG_GROUP, EDB_GROUP])
def test_handlers_register_for_the_configured_group(group: str) -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, OperatorSettings(api_group=group))
    assert watched(registry) == {
        (group, "clusters"),
        (group, "imagecatalogs"),
        (group, "clusterimagecatalogs"),
        ("", "pods"),
    }
    assert not registry._changing.get_all_handlers(), "no handler that stores state or finalizers"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_cluster_crd_forbids_both_image_sources_and_scales_instances() -> None:
    """CloudNativePG's rule: not both (neither = the operator's default image, set at
    admission); `kubectl scale` moves spec.instances."""
    (crd,) = load_all(MANIFESTS / "crds" / "cluster.yaml")
    assert crd["spec"]["group"] == CNPG_GROUP
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.instances",
            "statusReplicasPath": ".status.instances",
            "labelSelectorPath": ".status.selector",
        },
    }
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert rules == ["!(has(self.imageName) && has(self.imageCatalogRef))"]
    props = spec["properties"]
    assert props["enableSuperuserAccess"]["default"] is False
    assert props["imageCatalogRef"]["required"] == ["kind", "name", "major"]
    assert {"pg_hba", "pg_ident"} <= set(props["postgresql"]["properties"])


def cluster_role_grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, res, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for res in rule["resources"]
        for verb in rule["verbs"]
    }


def test_operator_holds_every_permission_it_grants_instances() -> None:
    docs = load_all(MANIFESTS / "rbac.yaml")
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert role["metadata"]["name"] == "postgresql-operator-manager"
    held = cluster_role_grants(role["rules"])
    granted = cluster_role_grants(
        resources.role_rules(parse_cluster(cluster_body()), OperatorSettings())
    )
    assert granted <= held
    assert ("", "secrets", "list") not in held, "the operator never lists Secrets"
    assert not any(verb == "*" or res == "*" for _, res, verb in held)


def test_operator_runs_restricted() -> None:
    (ns,) = load_all(MANIFESTS / "namespace.yaml")
    assert ns["metadata"]["name"] == "postgresql-operator-system"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (deploy,) = load_all(MANIFESTS / "deployment.yaml")
    assert deploy["metadata"]["namespace"] == "postgresql-operator-system"
    pod = deploy["spec"]["template"]
    assert pod["spec"]["serviceAccountName"] == "postgresql-operator-manager"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_kustomization_includes_crds_and_everything_else() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert "crds" in kustomization["resources"]
    for entry in kustomization["resources"]:
        assert (MANIFESTS / entry).exists(), entry
    crds = yaml.safe_load((MANIFESTS / "crds" / "kustomization.yaml").read_text())
    assert "cluster.yaml" in crds["resources"], "the Cluster CRD ships with the catalog CRDs"
    listed = [*kustomization["resources"], *(f"crds/{r}" for r in crds["resources"])]
    assert len(listed) == len(set(listed)), "a resource listed twice breaks kustomize"
