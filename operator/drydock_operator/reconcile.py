"""Pure decisions: which image a Cluster runs, what to report, what to do with secrets.

Nothing here talks to the API. `controller.py` gathers what it observed, asks these
functions (and `topology.py`, for the instances) what to do, and carries the answer out
through `k8s.py`. Keeping the decisions pure is what lets the unit tests pin the
behaviour CloudNativePG users rely on: a missing catalog or major changes nothing but
the phase; the superuser Secret exists only while superuser access is on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from drydock_operator.model import Catalog, Cluster, Instance
from drydock_operator.topology import (
    PHASE_CREATING,
    PHASE_FAILOVER,
    PHASE_HEALTHY,
    PHASE_SCALING_DOWN,
    PHASE_SWITCHOVER,
    PHASE_UPGRADING,
    PHASE_WAITING,
    Plan,
    Step,
    serial_of,
)

__all__ = [
    "PHASE_CREATING",
    "PHASE_FAILOVER",
    "PHASE_HEALTHY",
    "PHASE_SCALING_DOWN",
    "PHASE_SWITCHOVER",
    "PHASE_UPGRADING",
    "PHASE_WAITING",
    "Plan",
    "Step",
]

PHASE_CATALOG_ERROR = "Cluster has incomplete or invalid image catalog"
PHASE_IMAGE_ERROR = "Cluster cannot proceed: unsupported image change"

EVENT_REASON_IMAGE = "DiscoverImage"


@dataclass(frozen=True)
class ImageDecision:
    """The image a Cluster should run, or why it cannot be decided."""

    image: str | None
    major: int | None = None
    error: str | None = None
    error_phase: str = PHASE_CATALOG_ERROR


def resolve_image(cluster: Cluster, catalog: Catalog | None, api_group: str) -> ImageDecision:
    """Pick the image: `imageName` as is, or the catalog's entry for the requested major.

    `catalog` is the catalog the Cluster references, or None when it could not be read.
    A major above the one the data directory was set up for would need `pg_upgrade`,
    which this operator does not run, and a lower one would be a downgrade: both are
    refused rather than rolled out.
    """
    if cluster.catalog_ref is None:
        if cluster.image_name:
            return ImageDecision(image=cluster.image_name)
        return ImageDecision(None, error="neither imageName nor imageCatalogRef is set")
    ref = cluster.catalog_ref
    if ref.api_group and ref.api_group != api_group:
        return ImageDecision(None, error=f"imageCatalogRef.apiGroup must be {api_group}")
    if catalog is None:
        return ImageDecision(None, error=f"Cannot get {ref.identifier}")
    image = catalog.image_for(ref.major)
    if image is None:
        return ImageDecision(None, error=f"Cannot find major {ref.major} in {ref.identifier}")
    info = cluster.image_info
    if info is not None and ref.major < info.major:
        return ImageDecision(
            None,
            error=f"cannot downgrade from PostgreSQL {info.major} to {ref.major}",
            error_phase=PHASE_IMAGE_ERROR,
        )
    if info is not None and ref.major > info.major:
        return ImageDecision(
            None,
            error=f"upgrading from PostgreSQL {info.major} to {ref.major} needs pg_upgrade, "
            "which this operator does not run",
            error_phase=PHASE_IMAGE_ERROR,
        )
    return ImageDecision(image=image, major=ref.major)


def primary_of(cluster: Cluster) -> str:
    """The primary the operator wants: status.targetPrimary, else the recorded current
    primary, else the first instance of a new Cluster."""
    return cluster.target_primary or cluster.current_primary or f"{cluster.name}-1"


def desired_status(
    cluster: Cluster,
    decision: ImageDecision,
    plan: Plan | None,
    observed: Sequence[Instance],
) -> dict[str, Any]:
    """The status fields this operator owns, as they should be now.

    On an image error only the phase and its reason change: `status.image` keeps the
    last good image, so nothing rolls while a catalog is broken. `currentPrimary` is not
    among them: the instance manager that became primary writes it.
    """
    if decision.error is not None or decision.image is None:
        return {"phase": decision.error_phase, "phaseReason": decision.error or ""}
    status: dict[str, Any] = {
        "image": decision.image,
        "phase": plan.phase if plan else PHASE_HEALTHY,
        "phaseReason": plan.reason if plan else "",
        "instances": len(observed),
        "readyInstances": sum(1 for i in observed if i.ready and not i.deleting),
        "instanceNames": sorted((i.name for i in observed), key=serial_of),
        "targetPrimary": primary_of(cluster),
    }
    if decision.major is not None:
        status["pgDataImageInfo"] = {"image": decision.image, "majorVersion": decision.major}
    return status


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Only the fields that differ, so an unchanged Cluster costs no write."""
    return {k: v for k, v in desired.items() if current.get(k) != v}


def should_warn(cluster: Cluster, decision: ImageDecision) -> bool:
    """Post a Warning event when a Cluster enters an image error, not on every retry."""
    if decision.error is None:
        return False
    return (cluster.status_phase, cluster.status_phase_reason) != (
        decision.error_phase,
        decision.error,
    )


def owned_by(owner_uids: Sequence[str], cluster: Cluster) -> bool:
    """True when an object lists this Cluster (by uid) among its owners."""
    return bool(cluster.uid) and cluster.uid in owner_uids


class SecretAction(Enum):
    """What to do about the superuser Secret."""

    CREATE = "create"
    DELETE = "delete"
    KEEP = "keep"


@dataclass(frozen=True)
class ExistingSecret:
    """The facts about an existing Secret that decide whether the operator may remove it."""

    managed_by: str | None
    owner_uids: tuple[str, ...]


def superuser_secret_action(
    cluster: Cluster, existing: ExistingSecret | None, managed_by: str
) -> SecretAction:
    """`postgres` credentials exist only while enableSuperuserAccess is true.

    Turning access off deletes the Secret only when this operator generated it for this
    Cluster; a Secret a person created under the same name is left alone.
    """
    if cluster.enable_superuser_access:
        return SecretAction.CREATE if existing is None else SecretAction.KEEP
    if existing is None:
        return SecretAction.KEEP
    if existing.managed_by == managed_by and owned_by(existing.owner_uids, cluster):
        return SecretAction.DELETE
    return SecretAction.KEEP
