"""Pure decisions of the included operator.

Aspects: image resolution from imageName and from CloudNativePG's own published catalog,
the error cases (missing catalog, missing major, downgrade, upgrade), the status written
(the target primary, never the current one: the instance manager owns it), and when a
Warning event is due. The instances' decisions are in test_operator_topology.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from drydock_operator import reconcile
from drydock_operator.model import Catalog, Instance, parse_catalog, parse_cluster
from drydock_operator.reconcile import Plan, Step
from operator_samples import cluster_body

GROUP = "postgresql.cnpg.io"


def cnpg_catalog(fixtures: Path) -> Catalog:
    return parse_catalog(yaml.safe_load((fixtures / "catalog-minimal-bookworm.yaml").read_text()))


def test_resolves_the_digest_from_cnpgs_published_catalog(cnpg_fixtures: Path) -> None:
    catalog = cnpg_catalog(cnpg_fixtures)
    cluster = parse_cluster(cluster_body())
    decision = reconcile.resolve_image(cluster, catalog, GROUP)
    assert decision.error is None
    assert decision.major == 17
    assert decision.image == (
        "ghcr.io/cloudnative-pg/postgresql:17.11-202608310816-minimal-bookworm"
        "@sha256:fc1ee3311862d970d9a1a62d9c85e821134bde2536e4323af1e97d794ca93dd5"
    )


def test_every_major_in_the_cnpg_catalog_resolves_to_a_digest(cnpg_fixtures: Path) -> None:
    catalog = cnpg_catalog(cnpg_fixtures)
    assert [m for m, _ in catalog.images] == [13, 14, 15, 16, 17, 18]
    for major, image in catalog.images:
        ref = dict(cluster_body()["spec"]["imageCatalogRef"], major=major)
        decision = reconcile.resolve_image(
            parse_cluster(cluster_body(imageCatalogRef=ref)), catalog, GROUP
        )
        assert decision.image == image
        assert "@sha256:" in image


def test_image_name_is_used_as_is() -> None:
    body = cluster_body(imageName="registry.example/pg:17@sha256:ab")
    del body["spec"]["imageCatalogRef"]
    decision = reconcile.resolve_image(parse_cluster(body), None, GROUP)
    assert decision == reconcile.ImageDecision(image="registry.example/pg:17@sha256:ab")


def test_missing_major_is_a_catalog_error(cnpg_fixtures: Path) -> None:
    ref = dict(cluster_body()["spec"]["imageCatalogRef"], major=19)
    cluster = parse_cluster(cluster_body(imageCatalogRef=ref))
    decision = reconcile.resolve_image(cluster, cnpg_catalog(cnpg_fixtures), GROUP)
    assert decision.image is None
    assert (
        decision.error == "Cannot find major 19 in ClusterImageCatalog/postgresql-minimal-bookworm"
    )
    assert decision.error_phase == reconcile.PHASE_CATALOG_ERROR


def test_missing_catalog_is_a_catalog_error() -> None:
    decision = reconcile.resolve_image(parse_cluster(cluster_body()), None, GROUP)
    assert decision.error == "Cannot get ClusterImageCatalog/postgresql-minimal-bookworm"


def test_catalog_of_another_group_is_refused(cnpg_fixtures: Path) -> None:
    decision = reconcile.resolve_image(
        parse_cluster(cluster_body()), cnpg_catalog(cnpg_fixtures), "postgresql.k8s.enterprisedb.io"
    )
    assert decision.error is not None
    assert "apiGroup" in decision.error


@pytest.mark.parametrize(("recorded", "wanted"), [(17, 16), (16, 17)])
def test_major_changes_are_refused_not_rolled(
    cnpg_fixtures: Path, recorded: int, wanted: int
) -> None:
    body = cluster_body(
        imageCatalogRef=dict(cluster_body()["spec"]["imageCatalogRef"], major=wanted)
    )
    body["status"] = {"pgDataImageInfo": {"image": "old", "majorVersion": recorded}}
    decision = reconcile.resolve_image(parse_cluster(body), cnpg_catalog(cnpg_fixtures), GROUP)
    assert decision.image is None
    assert decision.error_phase == reconcile.PHASE_IMAGE_ERROR


def test_error_status_changes_only_the_phase() -> None:
    body = cluster_body()
    body["status"] = {"image": "good", "phase": reconcile.PHASE_HEALTHY}
    cluster = parse_cluster(body)
    decision = reconcile.ImageDecision(None, error="Cannot find major 19 in X/y")
    desired = reconcile.desired_status(cluster, decision, None, [])
    assert desired == {
        "phase": reconcile.PHASE_CATALOG_ERROR,
        "phaseReason": "Cannot find major 19 in X/y",
    }
    assert "image" not in reconcile.status_patch(body["status"], desired)


def test_warning_is_posted_once_per_error() -> None:
    decision = reconcile.ImageDecision(None, error="Cannot find major 19 in X/y")
    fresh = parse_cluster(cluster_body())
    assert reconcile.should_warn(fresh, decision)
    body = cluster_body()
    body["status"] = {"phase": reconcile.PHASE_CATALOG_ERROR, "phaseReason": decision.error}
    assert not reconcile.should_warn(parse_cluster(body), decision)
    assert not reconcile.should_warn(fresh, reconcile.ImageDecision("img"))


def test_status_patch_is_empty_when_nothing_changed() -> None:
    desired = {"image": "a", "phase": "p"}
    assert reconcile.status_patch(dict(desired), desired) == {}
    assert reconcile.status_patch({"image": "b", "phase": "p"}, desired) == {"image": "a"}


# --- status ------------------------------------------------------------------------------------


def test_status_reports_image_instances_and_primary(cnpg_fixtures: Path) -> None:
    cluster = parse_cluster(cluster_body())
    decision = reconcile.resolve_image(cluster, cnpg_catalog(cnpg_fixtures), GROUP)
    pods = [Instance("pg-2", "x", False), Instance("pg-1", "x", True)]
    plan = Plan(Step.WAIT, ("pg-2",), "waiting", reconcile.PHASE_WAITING)
    status = reconcile.desired_status(cluster, decision, plan, pods)
    assert status["image"] == decision.image
    assert status["pgDataImageInfo"] == {"image": decision.image, "majorVersion": 17}
    assert status["instances"] == 2
    assert status["readyInstances"] == 1
    assert status["instanceNames"] == ["pg-1", "pg-2"]
    assert status["targetPrimary"] == "pg-1"
    assert status["phase"] == reconcile.PHASE_WAITING
    assert "currentPrimary" not in status, "the instance manager that promoted writes it"


def test_target_primary_follows_the_status_then_the_first_instance() -> None:
    body = cluster_body()
    assert reconcile.primary_of(parse_cluster(body)) == "pg-1"
    body["status"] = {"currentPrimary": "pg-2"}
    assert reconcile.primary_of(parse_cluster(body)) == "pg-2"
    body["status"] = {"currentPrimary": "pg-2", "targetPrimary": "pg-3"}
    assert reconcile.primary_of(parse_cluster(body)) == "pg-3"


# --- the superuser Secret ----------------------------------------------------------------------


def superuser_case(
    enabled: bool, existing: reconcile.ExistingSecret | None
) -> reconcile.SecretAction:
    cluster = parse_cluster(cluster_body(enableSuperuserAccess=enabled))
    return reconcile.superuser_secret_action(cluster, existing, "drydock-operator")


def test_superuser_secret_follows_enable_superuser_access() -> None:
    ours = reconcile.ExistingSecret("drydock-operator", ("uid-1",))
    assert superuser_case(True, None) is reconcile.SecretAction.CREATE
    assert superuser_case(True, ours) is reconcile.SecretAction.KEEP
    assert superuser_case(False, None) is reconcile.SecretAction.KEEP
    assert superuser_case(False, ours) is reconcile.SecretAction.DELETE


def test_a_superuser_secret_the_operator_did_not_make_is_kept() -> None:
    someone_elses = reconcile.ExistingSecret(None, ())
    other_cluster = reconcile.ExistingSecret("drydock-operator", ("uid-other",))
    assert superuser_case(False, someone_elses) is reconcile.SecretAction.KEEP
    assert superuser_case(False, other_cluster) is reconcile.SecretAction.KEEP
