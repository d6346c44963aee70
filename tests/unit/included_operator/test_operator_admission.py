"""Admission decisions (drydock_operator.admission): what the webhooks refuse and default.

Each refusal must name the field, so a user reading `kubectl apply`'s error knows what
to change; each test also shows the neighbouring good value admitted, so a check that
refused everything would fail here too.
"""

from __future__ import annotations

from typing import Any

import pytest
from drydock_operator import admission
from drydock_operator.resources import FIXED_PARAMETERS
from operator_samples import cluster_body

DEFAULT = "ghcr.io/cloudnative-pg/postgresql:17.5-minimal-bookworm"


def named(name: str, **spec: Any) -> dict[str, Any]:
    body = cluster_body(**spec)
    body["metadata"]["name"] = name
    return body


def fields(refusals: list[admission.Refusal]) -> list[str]:
    return [r.field for r in refusals]


def image_only(image: str = "registry.example/pg:16.4", **spec: Any) -> dict[str, Any]:
    body = cluster_body(**spec)
    del body["spec"]["imageCatalogRef"]
    body["spec"]["imageName"] = image
    return body


def test_a_good_cluster_is_admitted() -> None:
    assert admission.check_cluster(cluster_body(), None, "") == []
    assert admission.check_cluster(image_only(), None, "") == []


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("c" * 50, True),
        ("c" * 51, False),
        ("c" * 60, False),
        ("pg-1", True),
        ("1pg", False),  # DNS-1035: starts with a letter
        ("pg-", False),
        ("Pg", False),
        ("pg.one", False),
    ],
)
def test_cluster_names_are_dns_1035_labels_of_at_most_50(name: str, ok: bool) -> None:
    refusals = admission.check_cluster(named(name), None, "")
    assert (refusals == []) is ok, refusals
    if not ok:
        assert fields(refusals) == ["metadata.name"]


def test_sixty_characters_are_refused_with_a_clear_message() -> None:
    refusals = admission.check_cluster(named("c" * 60), None, "")
    text = admission.message("Cluster", "c" * 60, refusals)
    assert "metadata.name: 60 characters, at most 50 are allowed" in text


def test_image_source_as_cloudnativepg_both_refused_neither_is_the_default() -> None:
    both = cluster_body(imageName="registry.example/pg:17")
    assert fields(admission.check_cluster(both, None, DEFAULT)) == ["spec.imageName"]
    neither = image_only()
    del neither["spec"]["imageName"]
    assert admission.check_cluster(neither, None, DEFAULT) == []
    refusals = admission.check_cluster(neither, None, "")
    assert fields(refusals) == ["spec.imageName"]
    assert "DRYDOCK_OPERATOR_DEFAULT_IMAGE" in refusals[0].reason
    assert admission.cluster_defaults(neither["spec"], DEFAULT)["imageName"] == DEFAULT
    assert "imageName" not in admission.cluster_defaults(neither["spec"], "")


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("postgres", True),
        ("postgres:16", True),
        ("127.0.0.1:5000/drydock/postgresql@sha256:" + "a" * 64, True),
        ("ghcr.io/cloudnative-pg/postgresql:17.5-minimal-bookworm", True),
        ("Postgres:16", False),
        ("pg:16 ; rm", False),
        ("registry.example/pg@sha256:abc", False),
        ("", False),
    ],
)
def test_image_references_are_parsed_as_the_engine_does(image: str, ok: bool) -> None:
    assert admission.valid_image(image) is ok


@pytest.mark.parametrize("key", sorted(admission.FIXED))
def test_every_fixed_parameter_is_refused(key: str) -> None:
    body = cluster_body(postgresql={"parameters": {key: "x", "work_mem": "8MB"}})
    assert fields(admission.check_cluster(body, None, "")) == [f"spec.postgresql.parameters.{key}"]


def test_the_fixed_list_covers_cloudnativepg_and_the_instance_manager() -> None:
    assert set(FIXED_PARAMETERS) <= admission.FIXED
    for key in ("listen_addresses", "port", "ssl_cert_file", "archive_command", "wal_level"):
        assert key in admission.FIXED
    refusal = admission.check_parameters({"postgresql": {"parameters": {"wal_level": "minimal"}}})
    assert "below replica" in refusal[0].reason
    assert admission.check_parameters({"postgresql": {"parameters": {"work_mem": "4MB"}}}) == []


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("hostssl app app 10.0.0.0/8 scram-sha-256", True),
        ("host all all 10.0.0.0 255.0.0.0 md5", True),
        ("local all all peer", True),
        ("hostssl all all cert clientcert=verify-full", False),  # no address
        ("hostssl app app 10.0.0.0/8 scram", False),
        ("local all peer", False),
        ("include /etc/passwd", False),
        ("hosts all all all trust", False),
        ("host all all all trust\nlocal all all trust", False),
        ("", False),
    ],
)
def test_pg_hba_lines_must_be_well_formed(line: str, ok: bool) -> None:
    body = cluster_body(postgresql={"pg_hba": ["local all all peer", line]})
    refusals = admission.check_cluster(body, None, "")
    assert (refusals == []) is ok, refusals
    if not ok:
        assert fields(refusals) == ["spec.postgresql.pg_hba[1]"]


def test_a_major_change_is_refused_on_update() -> None:
    old = cluster_body()  # major 17 from the catalog
    new = cluster_body(imageCatalogRef={**old["spec"]["imageCatalogRef"], "major": 18})
    refusals = admission.check_cluster(new, old, "")
    assert fields(refusals) == ["spec.imageCatalogRef.major"]
    assert "from 17 to 18" in refusals[0].reason
    assert admission.check_cluster(cluster_body(instances=5), old, "") == []


def test_the_recorded_major_wins_and_image_tags_count() -> None:
    old = image_only("registry.example/pg@sha256:" + "b" * 64)
    old["status"] = {"pgDataImageInfo": {"image": "x", "majorVersion": 15}}
    assert admission.check_cluster(image_only("registry.example/pg:15.8"), old, "") == []
    refusals = admission.check_cluster(image_only("registry.example/pg:16.4"), old, "")
    assert fields(refusals) == ["spec.imageName"]
    # A digest alone says nothing about the major: admitted, the reconcile decides.
    assert (
        admission.check_cluster(image_only("registry.example/pg@sha256:" + "c" * 64), old, "") == []
    )


def test_defaults_are_cloudnativepgs_and_never_override_the_user() -> None:
    assert admission.cluster_defaults({}, "") == {
        "instances": 1,
        "primaryUpdateStrategy": "unsupervised",
        "postgresUID": 26,
        "postgresGID": 26,
    }
    spec = {
        "instances": 3,
        "primaryUpdateStrategy": "supervised",
        "postgresUID": 1000,
        "postgresGID": 1000,
    }
    assert admission.cluster_defaults(spec, "") == {}


def catalog(*entries: tuple[object, str]) -> dict[str, Any]:
    return {
        "kind": "ImageCatalog",
        "metadata": {"name": "c"},
        "spec": {"images": [{"major": m, "image": i} for m, i in entries]},
    }


def test_catalogs_need_unique_majors_and_valid_images() -> None:
    good = catalog((15, "registry.example/pg:15"), (16, "registry.example/pg:16"))
    assert admission.check_catalog(good) == []
    dup = catalog((15, "registry.example/pg:15"), (15, "registry.example/pg:15b"))
    assert fields(admission.check_catalog(dup)) == ["spec.images[1].major"]
    bad = catalog((15, "registry.example/pg:15"), (16, "Not A Reference"))
    assert fields(admission.check_catalog(bad)) == ["spec.images[1].image"]


def test_bootstrap_cannot_change_once_the_cluster_exists() -> None:
    old = cluster_body(bootstrap={"initdb": {"database": "shop"}})
    new = cluster_body(bootstrap={"initdb": {"database": "other"}})
    assert fields(admission.check_cluster(new, old, "")) == ["spec.bootstrap"]
    assert admission.check_cluster(old, old, "") == []
    assert admission.check_cluster(new, None, "") == []


def test_an_image_not_pinned_by_digest_gets_a_warning() -> None:
    (warning,) = admission.cluster_warnings({"imageName": "registry.example/pg:16"})
    assert "not pinned by digest" in warning
    assert admission.cluster_warnings({"imageName": "r.example/pg@sha256:" + "a" * 64}) == []
    assert admission.cluster_warnings({}) == []
