"""Pure decisions about the instances: creation order, rolling update, switchover, failover.

A small simulation plays the kubelet and the instance managers (a created pod becomes
Ready, a deleted one goes, the target primary promotes and records itself as current)
and drives `topology.plan` step by step, checking what CloudNativePG users rely on: the
primary first and replicas only once it is Ready; a roll deletes one instance at a time,
replicas from the highest serial, never while another instance is down; the primary is
never deleted while it is the primary of several instances (a switchover to an
up-to-date replica comes first); a lost primary is replaced by the most advanced replica
by reported WAL position, never by a replica that has not reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from drydock_operator import topology
from drydock_operator.model import Instance, InstanceReport
from drydock_operator.topology import Plan, Step, Topology


def report(name: str, lsn: int, *, recovery: bool = True, ready: bool = True) -> InstanceReport:
    return InstanceReport(name, not recovery, recovery, lsn, recovery, ready)


@dataclass
class World:
    """Pods, manager reports and the Cluster's primaries, advanced like the real ones."""

    count: int
    image: str = "old"
    target: str = "pg-1"
    current: str | None = None
    pods: dict[str, Instance] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)

    def topology(self) -> Topology:
        reports = {
            name: report(name, 100 - topology.serial_of(name), recovery=name != self.current)
            for name, pod in self.pods.items()
            if pod.ready and not pod.deleting
        }
        return Topology(
            "pg",
            self.count,
            self.image,
            self.target,
            self.current,
            list(self.pods.values()),
            reports,
        )

    def step(self) -> Plan:
        plan = topology.plan(self.topology())
        names = plan.instances
        if plan.step is Step.CREATE:
            for name in names:
                self.pods[name] = Instance(name, self.image, ready=False)
                self.log.append(("create", name))
        elif plan.step is Step.DELETE:
            (name,) = names
            down = [p for n, p in self.pods.items() if not p.ready or p.deleting]
            assert not down, f"deleting {name} while {down} are down"
            assert not (name == self.current and len(self.pods) > 1), "primary deleted"
            self.pods[name] = replace(self.pods[name], deleting=True)
            self.log.append(("delete", name))
        elif plan.step is Step.PROMOTE:
            (self.target,) = names
            self.log.append(("promote", self.target))
        elif plan.step is Step.WAIT:
            self._settle()
        return plan

    def _settle(self) -> None:
        """One tick of the kubelet and the managers."""
        self.pods = {n: p for n, p in self.pods.items() if not p.deleting}
        if self.target in self.pods and self.current != self.target:
            self.current = self.target  # the target's manager promoted
        primary_ready = self.current in self.pods and self.pods[self.current].ready
        for name, pod in self.pods.items():
            if not pod.ready and (name == self.target or primary_ready):
                self.pods[name] = replace(pod, ready=True)
        if self.current is None and self.target in self.pods:
            self.current = self.target

    def run(self, steps: int = 60) -> list[tuple[str, str]]:
        for _ in range(steps):
            if self.step().step is Step.IDLE:
                return self.log
        raise AssertionError(f"did not settle: {self.log}")


def healthy(count: int, image: str = "old", primary: str = "pg-1") -> World:
    world = World(count, image=image, target=primary, current=primary)
    world.pods = {f"pg-{i}": Instance(f"pg-{i}", image, ready=True) for i in range(1, count + 1)}
    return world


def test_a_new_cluster_creates_its_primary_first_then_the_replicas() -> None:
    world = World(3, image="img")
    first = world.step()
    assert (first.step, first.instances, first.phase) == (
        Step.CREATE,
        ("pg-1",),
        topology.PHASE_CREATING,
    )
    assert world.step().step is Step.WAIT  # the primary is not Ready yet: nothing to clone
    second = world.step()
    assert (second.step, second.instances) == (Step.CREATE, ("pg-2", "pg-3"))
    world.run()
    assert world.current == "pg-1"


def test_a_roll_goes_replicas_first_then_switches_over_then_the_old_primary() -> None:
    world = healthy(3)
    world.image = "new"
    log = world.run()
    assert [entry for entry in log if entry[0] != "create"] == [
        ("delete", "pg-3"),
        ("delete", "pg-2"),
        ("promote", "pg-2"),
        ("delete", "pg-1"),
    ]
    assert world.current == "pg-2"
    assert {p.image for p in world.pods.values()} == {"new"}


def test_the_switchover_picks_the_most_advanced_up_to_date_replica() -> None:
    world = healthy(3, image="new")
    world.pods["pg-1"] = replace(world.pods["pg-1"], image="old")
    t = replace(
        world.topology(),
        reports={"pg-2": report("pg-2", 10), "pg-3": report("pg-3", 20)},
    )
    assert topology.plan(t) == Plan(
        Step.PROMOTE, ("pg-3",), "switching over from pg-1", topology.PHASE_SWITCHOVER
    )


def test_a_single_instance_rolls_in_place() -> None:
    world = healthy(1)
    world.image = "new"
    assert [e for e in world.run() if e[0] != "create"] == [("delete", "pg-1")]


def test_a_deleted_primary_is_replaced_by_the_most_advanced_replica() -> None:
    world = healthy(3)
    world.pods["pg-1"] = replace(world.pods["pg-1"], deleting=True)
    t = replace(
        world.topology(),
        reports={"pg-2": report("pg-2", 10, ready=False), "pg-3": report("pg-3", 30)},
    )
    assert topology.plan(t) == Plan(
        Step.PROMOTE, ("pg-3",), "failing over from pg-1", topology.PHASE_FAILOVER
    )


def test_a_failover_never_promotes_a_replica_that_has_not_reported() -> None:
    world = healthy(2)
    del world.pods["pg-1"]
    t = replace(world.topology(), reports={})
    plan = topology.plan(t)
    assert (plan.step, plan.phase) == (Step.WAIT, topology.PHASE_FAILOVER)


def test_after_a_failover_the_old_primary_comes_back_as_a_replica() -> None:
    world = healthy(3)
    world.pods["pg-1"] = replace(world.pods["pg-1"], deleting=True)
    log = world.run()
    assert log[0] == ("promote", "pg-2")  # equal positions: the lowest serial
    assert ("create", "pg-1") in log
    assert world.current == "pg-2"
    assert sorted(world.pods) == ["pg-1", "pg-2", "pg-3"]


def test_nothing_happens_while_the_managers_move_the_primary() -> None:
    world = healthy(3, image="new")
    world.target = "pg-2"
    world.pods["pg-3"] = replace(world.pods["pg-3"], image="old")
    plan = topology.plan(world.topology())
    assert (plan.step, plan.instances, plan.phase) == (
        Step.WAIT,
        ("pg-2",),
        topology.PHASE_SWITCHOVER,
    )


def test_only_the_confirmed_primary_carries_the_primary_label() -> None:
    world = healthy(3)
    world.target = "pg-2"  # promotion asked for, not yet done
    assert topology.role_labels(world.topology()) == {
        "pg-1": "primary",
        "pg-2": "replica",
        "pg-3": "replica",
    }
    fresh = World(2)
    fresh.pods = {"pg-1": Instance("pg-1", "old", ready=False)}
    assert topology.role_labels(fresh.topology()) == {"pg-1": "primary"}


def test_scale_down_removes_the_highest_replica_never_the_primary() -> None:
    world = healthy(3, primary="pg-3")
    world.count = 1
    assert [e for e in world.run() if e[0] == "delete"] == [("delete", "pg-2"), ("delete", "pg-1")]
    assert sorted(world.pods) == ["pg-3"]
    world.count = 2
    world.run()
    assert sorted(world.pods) == ["pg-1", "pg-3"]


def test_most_advanced_breaks_ties_by_serial_and_can_require_readiness() -> None:
    reports = {
        "pg-2": report("pg-2", 5),
        "pg-3": report("pg-3", 5),
        "pg-4": report("pg-4", 9, ready=False),
    }
    names = ["pg-2", "pg-3", "pg-4"]
    assert topology.most_advanced(names, reports, need_ready=False) == "pg-4"
    assert topology.most_advanced(names, reports, need_ready=True) == "pg-2"
    assert topology.most_advanced(["pg-9"], reports, need_ready=False) is None


def test_the_phase_says_failover_while_the_old_primary_is_going() -> None:
    world = healthy(3)
    world.target = "pg-3"  # promotion asked for after pg-1's pod was deleted
    world.pods["pg-1"] = replace(world.pods["pg-1"], deleting=True)
    assert topology.plan(world.topology()).phase == topology.PHASE_FAILOVER
    world.pods["pg-1"] = replace(world.pods["pg-1"], deleting=False)
    assert topology.plan(world.topology()).phase == topology.PHASE_SWITCHOVER
