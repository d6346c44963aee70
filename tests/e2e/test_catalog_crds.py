"""Generated catalogs on a real API server, under CloudNativePG's CRDs and under Drydock's.

Both CRD sets define the same names, so they take turns: install one, run every test,
delete it and wait until it is gone, then install the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from catalog_support import CNPG, crd_set, install_crds, remove_crds

from pipeline.catalog.apply import object_path
from pipeline.catalog.crd import UNIQUE_MAJORS_MESSAGE
from pipeline.catalog.generate import CatalogSettings, generate
from pipeline.catalog.validate import validate
from pipeline.models.publish import PublishedImage
from pipeline.tools.controlplane import ControlPlane
from pipeline.tools.kubeapi import KubeAPI, KubeAPIError, load_kubeconfig, resource_path

pytestmark = pytest.mark.e2e

NAMESPACE = "e2e-catalogs"


@pytest.fixture(scope="module", params=["cnpg", "drydock"])
def crds(request: pytest.FixtureRequest, control_plane_settings: Any) -> Iterator[str]:
    from pipeline.tools import controlplane

    cp = controlplane.up(control_plane_settings)
    docs = crd_set(request.param)
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        install_crds(api, docs)
        api.create(
            resource_path("v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            exist_ok=True,
        )
    yield request.param
    cp = controlplane.up(control_plane_settings)
    with KubeAPI(load_kubeconfig(cp.kubeconfig)) as api:
        remove_crds(api, docs)


def fake_images() -> list[PublishedImage]:
    """Not pushed anywhere: these tests are about the API server's validation only."""
    out = []
    for i, (flavour, major) in enumerate(
        (f, m) for f in ("minimal", "standard") for m in (13, 14, 15, 16, 17, 18)
    ):
        tag = f"{major}.1-202611271200-{flavour}-trixie"
        out.append(
            PublishedImage(
                target=f"postgresql-{major}-{flavour}-trixie",
                registry="127.0.0.1:5000",
                repository="drydock/postgresql",
                tag=tag,
                digest="sha256:" + f"{i:064x}",
                gated=True,
                major=major,
                flavour=flavour,
                release="trixie",
                created="2026-11-27T12:00:00Z",
            )
        )
    return out


def test_generated_catalogs_are_accepted(crds: str, kube_api: KubeAPI) -> None:
    catalogs = generate(fake_images(), CatalogSettings(namespace=NAMESPACE))
    validate(catalogs)
    assert {c.kind for c in catalogs} == {"ClusterImageCatalog", "ImageCatalog"}
    for catalog in catalogs:
        written = kube_api.apply(object_path(catalog), catalog.manifest())
        assert written["spec"] == catalog.spec(), crds
        assert written["metadata"]["labels"] == dict(catalog.labels)
        live = kube_api.get(object_path(catalog))
        assert live is not None and live["spec"] == catalog.spec()


def test_duplicate_major_is_rejected_by_the_servers_cel_rule(crds: str, kube_api: KubeAPI) -> None:
    (catalog,) = [c for c in generate(fake_images()) if c.flavour == "minimal"]
    obj = catalog.manifest()
    obj["metadata"]["name"] = "e2e-duplicate-major"
    obj["spec"]["images"][1]["major"] = obj["spec"]["images"][0]["major"]
    path = resource_path("postgresql.cnpg.io/v1", "clusterimagecatalogs", "e2e-duplicate-major")
    with pytest.raises(KubeAPIError) as err:
        kube_api.apply(path, obj)
    assert err.value.status == 422
    assert UNIQUE_MAJORS_MESSAGE in err.value.message
    assert kube_api.get(path) is None


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"major": 9}, "spec.images[0].major"),
        ({"image": None}, "spec.images[0].image"),
    ],
)
def test_schema_violations_are_rejected(
    crds: str, kube_api: KubeAPI, change: dict[str, Any], needle: str
) -> None:
    (catalog,) = [c for c in generate(fake_images()) if c.flavour == "standard"]
    obj = catalog.manifest()
    obj["metadata"]["name"] = "e2e-bad-schema"
    entry = obj["spec"]["images"][0]
    for key, value in change.items():
        if value is None:
            del entry[key]
        else:
            entry[key] = value
    path = resource_path("postgresql.cnpg.io/v1", "clusterimagecatalogs", "e2e-bad-schema")
    with pytest.raises(KubeAPIError) as err:
        kube_api.apply(path, obj)
    assert err.value.status == 422
    assert needle in err.value.message


def test_more_than_eight_majors_is_rejected(crds: str, kube_api: KubeAPI) -> None:
    (catalog,) = [c for c in generate(fake_images()) if c.flavour == "minimal"]
    obj = catalog.manifest()
    obj["metadata"]["name"] = "e2e-nine-majors"
    image = obj["spec"]["images"][0]["image"]
    obj["spec"]["images"] = [{"major": 10 + i, "image": image} for i in range(9)]
    path = resource_path("postgresql.cnpg.io/v1", "clusterimagecatalogs", "e2e-nine-majors")
    with pytest.raises(KubeAPIError) as err:
        kube_api.apply(path, obj)
    assert err.value.status == 422


def test_published_cnpg_catalog_applies_cleanly(
    crds: str, kube_api: KubeAPI, control_plane: ControlPlane
) -> None:
    obj = yaml.safe_load((CNPG / "catalog-minimal-bookworm.yaml").read_text())
    path = resource_path("postgresql.cnpg.io/v1", "clusterimagecatalogs", obj["metadata"]["name"])
    written = kube_api.apply(path, obj)
    assert written["spec"] == obj["spec"], crds
    assert written["metadata"]["labels"] == obj["metadata"]["labels"]
    kube_api.delete(path)
    kube_api.wait_gone(path)
