"""Pure decisions about a Cluster's instances: create, roll, switch over, fail over.

The operator moves the primary by writing `status.targetPrimary`; the instance managers
do the rest (the target promotes once its upstream is gone, the old primary rewinds and
follows it) and the new primary records itself as `status.currentPrimary`. So a
transition is in progress while the two differ, and nothing else happens meanwhile.

A rolling update (a new image) re-creates the replicas one at a time, highest serial
first, each only while every instance exists and is Ready (a standby is Ready only while
it streams); then switches over to the most advanced up-to-date replica; then re-creates
the old primary, by then a replica like the others. A Cluster of one instance has nobody
to switch over to and is re-created in place.

A primary pod that is deleted (or has disappeared) is replaced by promoting the most
advanced replica, judged by the WAL position its manager reports; the old pod is
re-created later as a replica, and its manager rewinds it onto the new timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from drydock_operator.model import Instance, InstanceReport

# Phase strings as CloudNativePG reports them, so dashboards and `kubectl get` read alike.
PHASE_HEALTHY = "Cluster in healthy state"
PHASE_CREATING = "Setting up primary"
PHASE_REPLICAS = "Creating a new replica"
PHASE_WAITING = "Waiting for the instances to become active"
PHASE_UPGRADING = "Upgrading cluster"
PHASE_SCALING_DOWN = "Scaling down"
PHASE_SWITCHOVER = "Switchover in progress"
PHASE_FAILOVER = "Failing over"
PHASE_WAITING_FOR_USER = "Waiting for user action"


class Step(Enum):
    """The one kind of change the next reconciliation makes to the instances."""

    CREATE = "create"
    DELETE = "delete"
    PROMOTE = "promote"  # write status.targetPrimary (switchover or failover)
    WAIT = "wait"
    IDLE = "idle"


@dataclass(frozen=True)
class Plan:
    """What to do now, and a sentence saying why."""

    step: Step
    instances: tuple[str, ...] = ()
    reason: str = ""
    phase: str = PHASE_HEALTHY


@dataclass(frozen=True)
class Topology:
    """What the operator knows about a Cluster's instances when it plans."""

    cluster: str
    count: int
    image: str
    target_primary: str
    current_primary: str | None
    observed: Sequence[Instance]
    reports: Mapping[str, InstanceReport]
    supervised: bool = False
    """`primaryUpdateStrategy: supervised`: a roll stops before the switchover; the user
    moves the primary (writes status.targetPrimary) and the roll then goes on."""

    @property
    def by_name(self) -> dict[str, Instance]:
        return {i.name: i for i in self.observed}


def instance_names(cluster_name: str, count: int) -> tuple[str, ...]:
    """`<cluster>-1` .. `<cluster>-N`, as CloudNativePG names instances (serials from 1)."""
    return tuple(f"{cluster_name}-{serial}" for serial in range(1, count + 1))


def serial_of(instance_name: str) -> int:
    """The serial number at the end of an instance name (0 when there is none)."""
    tail = instance_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def most_advanced(
    candidates: Sequence[str], reports: Mapping[str, InstanceReport], *, need_ready: bool
) -> str | None:
    """The standby with the highest WAL position its manager reports (lowest serial on a
    tie); None when no candidate has reported (never promote blind)."""
    known = [
        reports[n]
        for n in candidates
        if n in reports and reports[n].in_recovery and (reports[n].ready or not need_ready)
    ]
    if not known:
        return None
    return min(known, key=lambda r: (-r.lsn, serial_of(r.name))).name


def plan(t: Topology) -> Plan:
    """The next step towards `count` Ready instances on `image`, one step per call."""
    by_name = t.by_name
    target = t.target_primary
    primary_pod = by_name.get(target)

    # The primary's pod is going or gone: promote the most advanced replica. (A
    # transition whose target disappears is decided again the same way.)
    lost = primary_pod is None or primary_pod.deleting
    if lost and t.current_primary:
        replicas = [n for n, i in by_name.items() if n != target and not i.deleting]
        if replicas:
            chosen = most_advanced(replicas, t.reports, need_ready=False)
            if chosen is None:
                return Plan(
                    Step.WAIT, (target,), "primary lost; no replica has reported", PHASE_FAILOVER
                )
            return Plan(Step.PROMOTE, (chosen,), f"failing over from {target}", PHASE_FAILOVER)

    # A transition the managers are still carrying out: let them finish.
    if t.current_primary and t.current_primary != target and not lost:
        old = by_name.get(t.current_primary)
        phase = PHASE_FAILOVER if old is None or old.deleting else PHASE_SWITCHOVER
        return Plan(Step.WAIT, (target,), f"waiting for {target} to become primary", phase)

    going = tuple(sorted(i.name for i in t.observed if i.deleting))
    if going:
        return Plan(Step.WAIT, going, "waiting for deleted instances to go", PHASE_UPGRADING)

    if primary_pod is None:
        phase = PHASE_CREATING if not t.current_primary else PHASE_WAITING
        return Plan(Step.CREATE, (target,), "creating the primary", phase)

    if len(by_name) > t.count:
        extra = sorted((n for n in by_name if n != target), key=serial_of)
        return Plan(Step.DELETE, (extra[-1],), "scaling down", PHASE_SCALING_DOWN)

    missing = _missing(by_name, t.cluster, t.count)
    if missing:
        if not primary_pod.ready:
            why = "waiting for the primary before cloning"
            phase = PHASE_CREATING if not t.current_primary else PHASE_REPLICAS
            return Plan(Step.WAIT, (target,), why, phase)
        return Plan(Step.CREATE, missing, "creating replicas", PHASE_REPLICAS)

    outdated = [n for n in by_name if by_name[n].image != t.image]
    not_ready = tuple(n for n in sorted(by_name, key=serial_of) if not by_name[n].ready)
    if not_ready:
        phase = PHASE_UPGRADING if outdated or _mixed(by_name) else PHASE_WAITING
        return Plan(Step.WAIT, not_ready, "waiting for instances to become Ready", phase)

    replicas_outdated = sorted((n for n in outdated if n != target), key=serial_of, reverse=True)
    if replicas_outdated:
        return Plan(Step.DELETE, (replicas_outdated[0],), f"rolling to {t.image}", PHASE_UPGRADING)
    if target in outdated:
        if len(by_name) == 1:
            return Plan(Step.DELETE, (target,), f"rolling to {t.image}", PHASE_UPGRADING)
        if t.supervised:
            return Plan(
                Step.WAIT,
                (target,),
                "primaryUpdateStrategy is supervised: waiting for a manual switchover",
                PHASE_WAITING_FOR_USER,
            )
        others = [n for n in by_name if n != target]
        chosen = most_advanced(others, t.reports, need_ready=True) or min(others, key=serial_of)
        return Plan(Step.PROMOTE, (chosen,), f"switching over from {target}", PHASE_SWITCHOVER)
    return Plan(Step.IDLE, (), "all instances Ready on the wanted image", PHASE_HEALTHY)


def _missing(by_name: Mapping[str, Instance], cluster: str, count: int) -> tuple[str, ...]:
    """The lowest free serials that bring the Cluster up to `count` instances."""
    free = (n for n in instance_names(cluster, count + len(by_name)) if n not in by_name)
    return tuple(next(free) for _ in range(max(0, count - len(by_name))))


def _mixed(by_name: Mapping[str, Instance]) -> bool:
    return len({i.image for i in by_name.values()}) > 1


def role_labels(t: Topology) -> dict[str, str]:
    """The `instanceRole` label each existing pod should carry: `primary` for the primary
    its manager confirmed (the target of a new Cluster until then), else `replica`; so
    `-rw` moves only once the new primary has promoted."""
    primary = t.current_primary or t.target_primary
    return {
        i.name: "primary" if i.name == primary else "replica" for i in t.observed if not i.deleting
    }
