"""The operator's admission webhooks on the real API server, and a Cluster they admit runs.

The operator runs in-process with its ServiceAccount token (as in test_operator_node.py);
the shipped webhook configurations (`operator/manifests/webhooks.yaml`) are installed and
the operator injects its own CA and its address (the host: the API server runs there)
into them. Every refusal below comes from the webhook (the message is the operator's,
naming the field), through the real API server; a CloudNativePG-style Cluster with only
`imageName` is admitted, gets the mutating webhook's defaults, and runs PostgreSQL on the
real node. One Cluster serves the running assertions; the others never get pods.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from kopf.testing import KopfRunner
from node_support import RESTRICTED, namespace
from operator_support import (
    CNPG,
    MANIFESTS,
    installed_manifests,
    load_all,
    path_of,
    running_operator,
    shipped_manifests,
    wait_for,
)
from pg_support import Images, psql, wait_healthy

from pipeline.devloop import manifests
from pipeline.errors import InputError
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, resource_path
from pipeline.tools.node import Node

pytestmark = pytest.mark.e2e

NS = "e2e-webhooks"
GROUP_VERSION = "postgresql.cnpg.io/v1"
HEALTHY_TIMEOUT = 300.0
ADMISSION = "admissionregistration.k8s.io/v1"


def webhook_docs() -> list[dict[str, Any]]:
    return load_all(MANIFESTS / "webhooks.yaml")


def configurations(api: KubeAPI) -> list[dict[str, Any]]:
    docs = [d for d in webhook_docs() if d["kind"].endswith("WebhookConfiguration")]
    return [api.get(path_of(d)) or {} for d in docs]


def injected(api: KubeAPI) -> list[dict[str, Any]] | None:
    found = configurations(api)
    hooks = [w for c in found for w in c.get("webhooks", [])]
    if hooks and all(w["clientConfig"].get("caBundle") for w in hooks):
        return found
    return None


@pytest.fixture(scope="module")
def operator(
    api: KubeAPI, started: Node, pg_images: Images, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KopfRunner]:
    crds, rbac = shipped_manifests()
    with installed_manifests(api, crds, rbac, NS):
        namespace(api, NS, RESTRICTED)
        hooks = webhook_docs()
        for doc in hooks:
            api.apply(path_of(doc), doc)
        try:
            extra = {
                "DRYDOCK_OPERATOR_IMAGE": pg_images.operator,
                "DRYDOCK_OPERATOR_DEFAULT_IMAGE": pg_images.operand,
            }
            workdir = tmp_path_factory.mktemp("operator-webhooks")
            with running_operator(started.control_plane, workdir, extra) as runner:
                wait_for("the webhook CA injected", lambda: injected(api))
                yield runner
        finally:
            # failurePolicy Fail: left behind, they would refuse every later module's Clusters.
            for doc in hooks:
                if doc["kind"].endswith("WebhookConfiguration"):
                    api.delete(path_of(doc))


def cluster(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def clusters(name: str | None = None) -> str:
    return resource_path(GROUP_VERSION, "clusters", name, NS)


def refusal(api: KubeAPI, path: str, body: dict[str, Any], method: str = "POST") -> str:
    """The API server's message when the webhook refuses the request (fails if admitted)."""
    try:
        if method == "POST":
            api.create(path, body)
        else:
            api.request(
                "PATCH",
                path,
                body=json.dumps(body).encode(),
                content_type="application/merge-patch+json",
            )
    except KubeAPIError as err:
        assert err.status == 422, err
        assert "admission webhook" in err.message, err.message  # not the CRD's schema
        return err.message
    pytest.fail(f"{method} {path} was admitted")


def test_the_operator_injected_its_ca_and_address(api: KubeAPI, operator: KopfRunner) -> None:
    found = injected(api) or []
    for config in found:
        for hook in config["webhooks"]:
            cfg = hook["clientConfig"]
            assert cfg["url"].startswith("https://127.0.0.1:"), cfg
            assert "service" not in cfg
            assert (hook["failurePolicy"], hook["sideEffects"]) == ("Fail", "None")
            assert hook["timeoutSeconds"] <= 10
            ca = x509.load_pem_x509_certificate(base64.b64decode(cfg["caBundle"]))
            assert ca.subject.rfc4514_string() == "CN=postgresql-operator-webhook-ca"
    secret = api.get(
        resource_path("v1", "secrets", "postgresql-operator-ca", "postgresql-operator-system")
    )
    assert secret and secret["type"] == "kubernetes.io/tls"


def test_a_cluster_named_with_60_characters_is_refused(api: KubeAPI, operator: KopfRunner) -> None:
    name = "c" * 60
    message = refusal(api, clusters(), cluster(name, imageName="registry.invalid/pg:15"))
    assert "metadata.name" in message and "60 characters, at most 50" in message, message
    assert api.get(clusters(name)) is None


def test_fixed_parameters_bad_pg_hba_and_both_image_sources_are_refused(
    api: KubeAPI, operator: KopfRunner
) -> None:
    body = cluster(
        "bad",
        imageName="registry.invalid/pg:15",
        imageCatalogRef={
            "apiGroup": "postgresql.cnpg.io",
            "kind": "ClusterImageCatalog",
            "name": "x",
            "major": 15,
        },
    )
    # Both image sources: the CRD's CEL rule refuses it before the validating webhook.
    try:
        api.create(clusters(), body)
        pytest.fail("a Cluster with imageName and imageCatalogRef was admitted")
    except KubeAPIError as err:
        assert "imageName and imageCatalogRef cannot both be set" in err.message, err.message
    body = cluster(
        "bad",
        imageName="registry.invalid/pg:15",
        postgresql={
            "parameters": {"archive_command": "/bin/true", "work_mem": "8MB"},
            "pg_hba": ["hostssl all all scram-sha-256"],
        },
    )
    message = refusal(api, clusters(), body)
    assert "spec.postgresql.parameters.archive_command" in message, message
    assert "work_mem" not in message
    assert "spec.postgresql.pg_hba[0]" in message, message


def test_a_major_version_change_is_refused_at_admission(api: KubeAPI, operator: KopfRunner) -> None:
    ref = {
        "apiGroup": "postgresql.cnpg.io",
        "kind": "ClusterImageCatalog",
        "name": "e2e-webhooks-absent",
        "major": 15,
    }
    api.create(clusters(), cluster("major", imageCatalogRef=ref))  # no catalog: no pods
    message = refusal(
        api, clusters("major"), {"spec": {"imageCatalogRef": {**ref, "major": 16}}}, "PATCH"
    )
    assert "spec.imageCatalogRef.major" in message and "from 15 to 16" in message, message
    api.delete(clusters("major"))


def test_a_bad_image_catalog_is_refused(api: KubeAPI, operator: KopfRunner) -> None:
    def catalog(*images: tuple[int, str]) -> dict[str, Any]:
        return {
            "apiVersion": GROUP_VERSION,
            "kind": "ImageCatalog",
            "metadata": {"name": "bad-catalog", "namespace": NS},
            "spec": {"images": [{"major": m, "image": i} for m, i in images]},
        }

    path = resource_path(GROUP_VERSION, "imagecatalogs", namespace=NS)
    body = catalog((15, "registry.invalid/pg:15"), (16, "Not A Reference"))
    message = refusal(api, path, body)
    assert "spec.images[1].image" in message and "'Not A Reference'" in message, message
    # A repeated major: CloudNativePG's own CRD rule refuses it first (the webhook would too).
    try:
        api.create(path, catalog((15, "registry.invalid/pg:15"), (15, "registry.invalid/pg:16")))
        pytest.fail("a catalog with a repeated major was admitted")
    except KubeAPIError as err:
        assert "unique major" in err.message, err.message
    assert api.get(resource_path(GROUP_VERSION, "imagecatalogs", "bad-catalog", NS)) is None


def test_a_cluster_with_image_name_only_is_admitted_defaulted_and_runs(
    api: KubeAPI, operator: KopfRunner, pg_images: Images
) -> None:
    api.create(
        clusters(),
        cluster("wh", imageName=pg_images.operand, storage={"size": "256Mi"}),
    )
    admitted = api.get(clusters("wh")) or {}
    spec = admitted["spec"]
    assert spec["primaryUpdateStrategy"] == "unsupervised"  # the mutating webhook's default
    assert (spec["instances"], spec["postgresUID"], spec["postgresGID"]) == (1, 26, 26)
    wait_healthy(lambda n: api.get(clusters(n)) or {}, "wh", pg_images.operand, 1, HEALTHY_TIMEOUT)
    ok, out = psql(
        api,
        NS,
        pg_images.operand,
        "SELECT 40 + 2",
        secret="wh-app",
        host="wh-rw",
        ca_secret="wh-ca",
    )
    assert (ok, out) == (True, "42")
    scale = api.get(clusters("wh") + "/scale") or {}
    assert scale["spec"]["replicas"] == 1
    assert scale["status"]["selector"] == "cnpg.io/cluster=wh"


def dry_run(api: KubeAPI, body: dict[str, Any]) -> dict[str, Any]:
    """What the API server would store: schema, strict fields, both webhooks, no write."""
    name = body["metadata"]["name"]
    resp = api.request(
        "PATCH",
        clusters(name),
        params={
            "fieldManager": "e2e",
            "force": "true",
            "fieldValidation": "Strict",
            "dryRun": "All",
        },
        body=json.dumps({**body, "metadata": {**body["metadata"], "namespace": NS}}).encode(),
        content_type="application/apply-patch+yaml",
    )
    result: dict[str, Any] = resp.json()
    return result


@pytest.mark.parametrize("sample", ["cluster-example.yaml", "cluster-example-pg-hba.yaml"])
def test_cloudnativepg_samples_are_admitted_unchanged(
    api: KubeAPI, operator: KopfRunner, pg_images: Images, sample: str
) -> None:
    """CloudNativePG's own samples (neither imageName nor a catalog: the default image),
    through strict field validation and both webhooks; a dry run (three instances each
    would cost minutes; the running Cluster above covers what they would show)."""
    (body,) = load_all(CNPG / "samples" / sample)
    stored = dry_run(api, body)
    assert stored["spec"]["imageName"] == pg_images.operand  # the operator's default image
    assert stored["spec"]["instances"] == 3
    assert stored["spec"]["storage"]["size"] == "1Gi"
    assert stored["spec"].get("postgresql", {}).get("pg_hba", []) == body["spec"].get(
        "postgresql", {}
    ).get("pg_hba", [])
    assert api.get(clusters(body["metadata"]["name"])) is None


def test_unknown_fields_are_refused_loudly_and_warnings_reach_the_user(
    api: KubeAPI, operator: KopfRunner, tmp_path: Any
) -> None:
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: typo\n"
        "spec:\n  instancez: 3\n  imageName: registry.invalid/pg:15\n"
    )
    docs = manifests.load_documents([manifest])
    with pytest.raises(InputError) as raised:
        manifests.apply_checked(api, docs, NS)
    text = str(raised.value)
    assert str(manifest) in text and "instancez" in text, text
    assert api.get(clusters("typo")) is None, "nothing is written"
    body = cluster("tagged", imageName="registry.invalid/pg:15")
    found = api.apply_strict(clusters("tagged"), body, dry_run=True)
    assert any("not pinned by digest" in w for w in found), found
