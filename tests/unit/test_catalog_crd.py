"""Drydock's catalog CRDs: schema-compatible with CloudNativePG's, and the files are current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.catalog.crd import (
    EDB_GROUP,
    KINDS,
    UNIQUE_MAJORS_RULE,
    crd,
    crd_files,
    object_schema,
)
from pipeline.catalog.validate import problems_in

REPO = Path(__file__).parents[2]
CNPG = REPO / "tests" / "fixtures" / "cnpg"
CRD_DIR = REPO / "operator" / "manifests" / "crds"


def strip(node: Any) -> Any:
    """The schema without prose: what a server validates."""
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def cnpg_crd(kind: str) -> dict[str, Any]:
    doc = yaml.safe_load((CNPG / f"postgresql.cnpg.io_{kind.lower()}s.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("kind", KINDS)
def test_names_scope_and_version_match_cnpg(kind: str) -> None:
    theirs, ours = cnpg_crd(kind), crd(kind)
    assert ours["metadata"]["name"] == theirs["metadata"]["name"]
    assert ours["spec"]["names"] == theirs["spec"]["names"]
    assert ours["spec"]["scope"] == theirs["spec"]["scope"]
    (tv,), (ov,) = theirs["spec"]["versions"], ours["spec"]["versions"]
    assert (ov["name"], ov["served"], ov["storage"]) == (tv["name"], tv["served"], tv["storage"])


def test_cluster_catalog_schema_equals_cnpg_without_prose() -> None:
    theirs = cnpg_crd("ClusterImageCatalog")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert strip(object_schema("ClusterImageCatalog")) == strip(theirs)


def test_namespaced_catalog_schema_is_cnpg_plus_extensions() -> None:
    theirs = cnpg_crd("ImageCatalog")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    ours = strip(object_schema("ImageCatalog"))
    del ours["properties"]["spec"]["properties"]["images"]["items"]["properties"]["extensions"]
    assert ours == strip(theirs)


def test_constraints_cnpg_relies_on() -> None:
    images = object_schema("ClusterImageCatalog")["properties"]["spec"]["properties"]["images"]
    assert (images["minItems"], images["maxItems"]) == (1, 8)
    assert images["items"]["properties"]["major"]["minimum"] == 10
    assert images["x-kubernetes-validations"][0]["rule"] == UNIQUE_MAJORS_RULE


def test_committed_crd_files_are_current() -> None:
    present = sorted(p.name for p in CRD_DIR.glob("*.yaml"))
    others = [
        n for n in present if not n.startswith("postgresql.cnpg.io_") and n != "kustomization.yaml"
    ]
    expected = crd_files(extra_resources=others)
    assert set(expected) <= set(present)
    kustomization = yaml.safe_load(expected["kustomization.yaml"])
    assert kustomization["resources"] == [n for n in present if n != "kustomization.yaml"]
    for name, text in expected.items():
        assert (CRD_DIR / name).read_text() == text, (
            f"regenerate: drydock catalog crds --output {CRD_DIR.relative_to(REPO)}"
        )


def test_group_option() -> None:
    doc = crd("ImageCatalog", EDB_GROUP)
    assert doc["metadata"]["name"] == "imagecatalogs.postgresql.k8s.enterprisedb.io"
    assert doc["spec"]["group"] == EDB_GROUP


def test_published_cnpg_catalog_is_valid_offline() -> None:
    obj = yaml.safe_load((CNPG / "catalog-minimal-bookworm.yaml").read_text())
    assert problems_in(obj, "catalog-minimal-bookworm.yaml") == []
