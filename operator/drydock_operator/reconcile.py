"""Pure decisions: which image a Cluster runs, which instance to touch next, what to report.

Nothing here talks to the API. `controller.py` gathers what it observed, asks these
functions what to do, and carries the answer out through `k8s.py`. Keeping the decisions
pure is what lets the unit tests pin the behaviour CloudNativePG users rely on: a catalog
entry change rolls the replicas first (highest serial first), the primary last, one at a
time and only while every other instance is Ready; a missing catalog or major changes
nothing but the phase.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from drydock_operator.model import Catalog, Cluster, Instance

# Phase strings as CloudNativePG reports them, so dashboards and `kubectl get` read alike.
PHASE_HEALTHY = "Cluster in healthy state"
PHASE_CREATING = "Setting up primary"
PHASE_WAITING = "Waiting for the instances to become active"
PHASE_UPGRADING = "Upgrading cluster"
PHASE_SCALING_DOWN = "Scaling down"
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


def instance_names(cluster_name: str, count: int) -> tuple[str, ...]:
    """`<cluster>-1` .. `<cluster>-N`, as CloudNativePG names instances (serials from 1)."""
    return tuple(f"{cluster_name}-{serial}" for serial in range(1, count + 1))


def serial_of(instance_name: str) -> int:
    """The serial number at the end of an instance name (0 when there is none)."""
    tail = instance_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def primary_of(cluster: Cluster) -> str:
    """The primary recorded in the status, or the first instance for a new Cluster."""
    return cluster.current_primary or f"{cluster.name}-1"


def rollout_order(names: Sequence[str], primary: str) -> tuple[str, ...]:
    """Replicas from the highest serial down, the primary last."""
    replicas = sorted((n for n in names if n != primary), key=serial_of, reverse=True)
    return (*replicas, *((primary,) if primary in names else ()))


class Step(Enum):
    """The one kind of change the next reconciliation makes to the instance pods."""

    CREATE = "create"
    DELETE = "delete"
    WAIT = "wait"
    IDLE = "idle"


@dataclass(frozen=True)
class Plan:
    """What to do to the instance pods now, and a sentence saying why."""

    step: Step
    instances: tuple[str, ...] = ()
    reason: str = ""
    phase: str = PHASE_HEALTHY


def plan_instances(
    cluster_name: str,
    desired_count: int,
    primary: str,
    image: str,
    observed: Sequence[Instance],
) -> Plan:
    """Decide the next step towards `desired_count` Ready instances all running `image`.

    One step per call: the caller carries it out and reconciles again on the next event,
    so a crash in between loses nothing. A rolling update deletes one outdated instance
    only when every instance exists and is Ready; the next call re-creates it with the
    new image, and the call after that waits for it to become Ready.
    """
    by_name = {i.name: i for i in observed}
    wanted = instance_names(cluster_name, desired_count)
    if any(i.deleting for i in observed):
        going = tuple(sorted(i.name for i in observed if i.deleting))
        return Plan(Step.WAIT, going, "waiting for deleted instances to go", PHASE_UPGRADING)
    missing = tuple(n for n in wanted if n not in by_name)
    if missing:
        phase = PHASE_CREATING if not by_name else PHASE_WAITING
        if any(i.image != image for i in observed) or (by_name and _rolling(by_name, image)):
            phase = PHASE_UPGRADING
        return Plan(Step.CREATE, missing, "creating missing instances", phase)
    extra = sorted((n for n in by_name if n not in wanted and n != primary), key=serial_of)
    if extra:
        return Plan(Step.DELETE, (extra[-1],), "scaling down", PHASE_SCALING_DOWN)
    not_ready = tuple(n for n in wanted if not by_name[n].ready)
    outdated = tuple(n for n in rollout_order(wanted, primary) if by_name[n].image != image)
    if not_ready:
        phase = PHASE_UPGRADING if outdated or _rolling(by_name, image) else PHASE_WAITING
        return Plan(Step.WAIT, not_ready, "waiting for instances to become Ready", phase)
    if outdated:
        return Plan(Step.DELETE, (outdated[0],), f"rolling to {image}", PHASE_UPGRADING)
    return Plan(Step.IDLE, (), "all instances Ready on the wanted image", PHASE_HEALTHY)


def _rolling(by_name: Mapping[str, Instance], image: str) -> bool:
    """True while some instances already run `image` and others do not yet."""
    images = {i.image for i in by_name.values()}
    return image in images and len(images) > 1


def desired_status(
    cluster: Cluster,
    decision: ImageDecision,
    plan: Plan | None,
    observed: Sequence[Instance],
) -> dict[str, Any]:
    """The status fields this operator owns, as they should be now.

    On an image error only the phase and its reason change: `status.image` keeps the
    last good image, so nothing rolls while a catalog is broken.
    """
    if decision.error is not None or decision.image is None:
        return {"phase": decision.error_phase, "phaseReason": decision.error or ""}
    primary = primary_of(cluster)
    wanted = instance_names(cluster.name, cluster.instances)
    status: dict[str, Any] = {
        "image": decision.image,
        "phase": plan.phase if plan else PHASE_HEALTHY,
        "phaseReason": plan.reason if plan else "",
        "instances": len(observed),
        "readyInstances": sum(1 for i in observed if i.ready and not i.deleting),
        "instanceNames": sorted((i.name for i in observed), key=serial_of),
        "currentPrimary": primary if primary in wanted else wanted[0],
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
