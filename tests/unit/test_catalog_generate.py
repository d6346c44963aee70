"""Catalog generation: naming, labels, digest form, newest gated image, determinism."""

from __future__ import annotations

import pytest
import yaml
from catalog_helpers import digest, image

from pipeline.catalog.crd import EDB_GROUP
from pipeline.catalog.generate import CatalogSettings, generate, kustomization, render_all
from pipeline.errors import InputError
from pipeline.models.publish import PublishedImage


def matrix() -> list[PublishedImage]:
    out: list[PublishedImage] = []
    n = 0
    for flavour in ("minimal", "standard"):
        for release in ("bookworm", "trixie"):
            for major in (15, 16, 17):
                for stamp in ("202611201200", "202611271200"):
                    n += 1
                    out.append(image(major, flavour, release, stamp=stamp, n=n))
    return out


def test_one_cluster_catalog_per_flavour_and_release() -> None:
    catalogs = generate(matrix())
    assert [c.name for c in catalogs] == [
        "postgresql-minimal-bookworm",
        "postgresql-minimal-trixie",
        "postgresql-standard-bookworm",
        "postgresql-standard-trixie",
    ]
    assert {c.kind for c in catalogs} == {"ClusterImageCatalog"}
    assert catalogs[0].filename == "catalog-minimal-bookworm.yaml"


def test_newest_image_per_major_by_digest() -> None:
    catalogs = generate(matrix())
    entries = catalogs[0].manifest()["spec"]["images"]
    assert [e["major"] for e in entries] == [15, 16, 17]
    for entry in entries:
        assert "-202611271200-minimal-bookworm@sha256:" in entry["image"]
        assert entry["image"].startswith("127.0.0.1:5000/drydock/postgresql:")
        ref, _, dig = entry["image"].partition("@")
        assert len(dig) == len("sha256:") + 64
        assert ":" in ref


def test_ungated_newest_falls_back_to_older_gated() -> None:
    old = image(16, stamp="202611201200", n=1)
    new = image(16, stamp="202611271200", n=2, gated=False)
    (catalog,) = generate([new, old])
    assert catalog.entries[0].image.digest == digest(1)


def test_labels_and_date_from_build_time() -> None:
    imgs = [image(16, stamp="202611201200", n=1), image(17, stamp="202611251830", n=2)]
    (catalog,) = generate(imgs, CatalogSettings(publisher="example.org"))
    labels = catalog.manifest()["metadata"]["labels"]
    assert labels == {
        "images.cnpg.io/family": "postgresql",
        "images.cnpg.io/type": "minimal",
        "images.cnpg.io/os": "bookworm",
        "images.cnpg.io/date": "20261125",
        "images.cnpg.io/publisher": "example.org",
    }


def test_date_label_is_quoted_string_in_yaml() -> None:
    (catalog,) = generate([image()])
    text = catalog.render()
    assert "images.cnpg.io/date: '20261127'" in text
    assert yaml.safe_load(text)["metadata"]["labels"]["images.cnpg.io/date"] == "20261127"


def test_same_input_any_order_same_bytes() -> None:
    imgs = matrix()
    first = render_all(generate(imgs))
    shuffled = imgs[1::2] + list(reversed(imgs[0::2]))
    assert render_all(generate(shuffled)) == first
    assert list(first) == sorted(first)


def test_tie_on_time_is_broken_by_tag_then_digest() -> None:
    a = image(16, n=5)
    b = image(16, n=3)
    (c1,) = generate([a, b])
    (c2,) = generate([b, a])
    assert c1.entries[0].image.digest == c2.entries[0].image.digest == digest(5)


def test_api_group_option() -> None:
    (catalog,) = generate([image()], CatalogSettings(api_group=EDB_GROUP))
    assert catalog.manifest()["apiVersion"] == "postgresql.k8s.enterprisedb.io/v1"


def test_namespaced_catalog_on_request() -> None:
    catalogs = generate([image()], CatalogSettings(namespace="team-a"))
    kinds = {c.kind: c for c in catalogs}
    assert set(kinds) == {"ClusterImageCatalog", "ImageCatalog"}
    ns = kinds["ImageCatalog"].manifest()
    assert ns["metadata"]["namespace"] == "team-a"
    assert ns["metadata"]["name"] == "postgresql-minimal-bookworm"
    assert "namespace" not in kinds["ClusterImageCatalog"].manifest()["metadata"]
    assert kinds["ImageCatalog"].filename != kinds["ClusterImageCatalog"].filename


def test_family_changes_names_and_files() -> None:
    (catalog,) = generate([image()], CatalogSettings(family="postgis"))
    assert catalog.name == "postgis-minimal-bookworm"
    assert catalog.filename == "postgis-minimal-bookworm.yaml"


def test_kustomization_lists_files_sorted() -> None:
    catalogs = generate(matrix())
    doc = yaml.safe_load(kustomization(reversed(catalogs)))
    assert doc["kind"] == "Kustomization"
    assert doc["resources"] == sorted(c.filename for c in catalogs)


def test_manifest_key_order_matches_cnpg() -> None:
    (catalog,) = generate([image()])
    text = catalog.render()
    keys = [text.index(k) for k in ("apiVersion", "kind", "metadata", "spec")]
    assert keys == sorted(keys)
    assert text.index("name:") < text.index("labels:")
    assert text.index("major:") < text.index("image:")


def test_non_operand_images_are_ignored() -> None:
    operator = PublishedImage(
        target="operator",
        registry="127.0.0.1:5000",
        repository="drydock/operator",
        tag="0.1.0-202611271200",
        digest=digest(9),
        gated=True,
    )
    (catalog,) = generate([operator, image()])
    assert len(catalog.entries) == 1


def test_partial_operand_fields_are_input_errors() -> None:
    bad = PublishedImage(
        target="x",
        registry="r",
        repository="a/b",
        tag="16.1-202611271200-minimal-bookworm",
        digest=digest(1),
        gated=True,
        major=16,
    )
    with pytest.raises(InputError) as err:
        generate([bad], source="published.json")
    (problem,) = err.value.problems
    assert problem.file == "published.json"
    assert problem.field == "[0]"
    assert "flavour" in problem.reason and "release" in problem.reason


def test_major_below_ten_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        generate([image(9)])
    assert err.value.problems[0].field == "[0].major"


def test_time_from_tag_when_created_is_empty() -> None:
    old = image(16, stamp="202611201200", n=1, created="")
    new = image(16, stamp="202611271200", n=2, created="")
    (catalog,) = generate([new, old])
    assert catalog.entries[0].image.digest == digest(2)


def test_no_time_at_all_is_an_input_error() -> None:
    img = image(16, stamp="x", created="")
    with pytest.raises(InputError) as err:
        generate([img])
    assert err.value.problems[0].field == "[0].created"


def test_nothing_gated_is_an_input_error() -> None:
    with pytest.raises(InputError):
        generate([image(gated=False)])
