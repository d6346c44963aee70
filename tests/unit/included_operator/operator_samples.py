"""Sample objects shared by the operator's unit tests."""

from __future__ import annotations

from typing import Any


def cluster_body(**spec: Any) -> dict[str, Any]:
    """A Cluster as the API returns it, with `spec` overrides."""
    body: dict[str, Any] = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "pg", "namespace": "db", "uid": "uid-1"},
        "spec": {
            "instances": 3,
            "imageCatalogRef": {
                "apiGroup": "postgresql.cnpg.io",
                "kind": "ClusterImageCatalog",
                "name": "postgresql-minimal-bookworm",
                "major": 17,
            },
            "storage": {"size": "2Gi"},
        },
    }
    body["spec"].update(spec)
    return body
