"""Package-version resolution: apt is asked once per base image for every target on it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipeline.archive.mirrors import Mirrors
from pipeline.build.freshness import apt_packages
from pipeline.build.resolve import Resolver, install_sets, root_of
from pipeline.build.upstream import Answer, Upstream, still_stands
from pipeline.descriptors.load import load_plan
from pipeline.errors import ToolError
from pipeline.models.targets import Plan
from pipeline.tools.docker import split_simulations

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan(ROOT / "images", ROOT / "dockerfiles")


class FakeApt:
    """Answers like apt-get -s: every package of a set at version 1.<call number>."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, ...]]]] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.upgrade = "Inst libssl3 [3.0.1-1] (3.0.2-1 Debian-Security:12/stable-security [amd64])"

    def __call__(self, image: str, sets: Sequence[Sequence[str]]) -> tuple[str, list[str]]:
        self.gate.wait(5)
        with self.lock:
            self.calls.append((image, [tuple(s) for s in sets]))
            n = len(self.calls)
        upgrade = self.upgrade
        installs = ["\n".join(f"Inst {p} (1.{n} Debian:12 [amd64])" for p in s) for s in sets]
        return upgrade, installs


def test_targets_resolve_on_the_debian_base_their_image_starts_from(plan: Plan) -> None:
    standard = plan.get("postgresql-15-standard-bookworm")
    assert root_of(standard, plan) == "base-bookworm"
    assert apt_packages(standard) == (
        "postgresql-common",
        "postgresql-15",
        "python3-minimal",
        "postgresql-15-pgaudit",
        "locales-all",
        "tzdata",
        "ca-certificates",
    )
    sets = install_sets(plan)
    assert apt_packages(standard) in sets["base-bookworm"]
    assert apt_packages(plan.get("operator")) in sets["base-bookworm"]
    assert apt_packages(plan.get("postgresql-17-minimal-trixie")) in sets["base-trixie"]
    assert not set(sets["base-bookworm"]) & set(sets["base-trixie"])


def test_one_container_per_base_image_whoever_asks(plan: Plan) -> None:
    apt = FakeApt()
    resolver = Resolver(plan, apt)
    names = ["postgresql-15-minimal-bookworm", "postgresql-15-standard-bookworm", "operator"]
    locks: dict[str, dict[str, str]] = {}

    def ask(name: str) -> None:
        locks[name] = resolver.lock_for(plan.get(name), "drydock/debian:bookworm", "sha256:b1")

    threads = [threading.Thread(target=ask, args=(n,)) for n in names]
    for t in threads:
        t.start()
    apt.gate.set()
    for t in threads:
        t.join()
    assert len(apt.calls) == 1 and resolver.containers == 1
    image, sets = apt.calls[0]
    assert image == "drydock/debian:bookworm"
    assert set(sets) == set(install_sets(plan)["base-bookworm"])
    assert locks["postgresql-15-standard-bookworm"]["postgresql-15-pgaudit"] == "1.1"
    assert "python3" in locks["operator"] and "locales-all" not in locks["operator"]
    # the base's own pending upgrades come from the same answer
    resolution = resolver.resolve("base-bookworm", "drydock/debian:bookworm", "sha256:b1")
    assert resolution.pending == {"libssl3": ("3.0.1-1", "3.0.2-1")}
    assert len(apt.calls) == 1
    # another image id (a rebuilt base) is asked again
    resolver.lock_for(plan.get("operator"), "drydock/debian:bookworm", "sha256:b2")
    assert len(apt.calls) == 2


def test_simulation_sections_are_all_required() -> None:
    out = (
        "noise\n@@drydock-set dist-upgrade\nInst a [1] (2 x [amd64])\n"
        "@@drydock-set 0\nInst b (1 x)\n"
    )
    upgrade, installs = split_simulations(out, 1)
    assert upgrade == "Inst a [1] (2 x [amd64])" and installs == ["Inst b (1 x)"]
    with pytest.raises(ToolError, match="incomplete"):
        split_simulations(out, 2)  # apt stopped before the second set: no partial answer
    with pytest.raises(ToolError):
        split_simulations("E: Unable to locate package nope\n", 0)


class FakeUpstream(Upstream):
    """The archive as a test states it: per release, the InRelease state and what it offers."""

    def __init__(self, store: Path) -> None:
        super().__init__(store / "archive", store / "resolutions", lambda r: Mirrors("a", "s"))
        self.states: dict[str, tuple[str, ...]] = {}
        self.offered: dict[str, dict[str, str]] = {}
        self.newest_asked = 0

    def state(self, release: str) -> tuple[str, ...]:
        return self.states[release]

    def newest(self, release: str) -> dict[str, str]:
        self.newest_asked += 1
        return self.offered[release]


def bookworm_only(plan: Plan) -> Plan:
    return plan.select(("postgresql-15-minimal-bookworm", "operator"))


def test_nothing_changed_upstream_means_no_container(plan: Plan, tmp_path: Path) -> None:
    small = bookworm_only(plan)
    upstream = FakeUpstream(tmp_path)
    upstream.states["bookworm"] = ("bookworm s1", "bookworm-updates u1", "bookworm-security x1")
    installed = {"libssl3": "3.0.1-1", "bash": "5.2-1"}
    apt = FakeApt()
    apt.gate.set()
    apt.upgrade = ""  # nothing pending in the base
    minimal = small.get("postgresql-15-minimal-bookworm")

    def fresh() -> Resolver:
        return Resolver(small, apt, upstream, lambda image_id: installed)

    first = fresh()
    lock = first.lock_for(minimal, "drydock/debian:bookworm", "sha256:b1")
    assert first.containers == 1 and lock["postgresql-15"] == "1.1"
    # 1. same InRelease hashes: apt's kept answer stands, nothing else is read
    second = fresh()
    assert second.lock_for(minimal, "drydock/debian:bookworm", "sha256:b1") == lock
    assert (second.containers, second.from_archive, upstream.newest_asked) == (0, 1, 0)
    # 2. a suite changed, but not what the image holds: the Packages entries say so
    upstream.states["bookworm"] = ("bookworm s1", "bookworm-updates u1", "bookworm-security x2")
    offered = {
        p: v
        for s in install_sets(small)["base-bookworm"]
        for p, v in first.resolve("base-bookworm", "r", "sha256:b1").locks[s].items()
    }
    upstream.offered["bookworm"] = {**offered, **installed, "unrelated": "9-1"}
    third = fresh()
    assert third.lock_for(minimal, "drydock/debian:bookworm", "sha256:b1") == lock
    assert (third.containers, third.from_archive) == (0, 1)
    # ... and the kept answer now carries the new state (no Packages read next time)
    fourth = fresh()
    fourth.lock_for(minimal, "drydock/debian:bookworm", "sha256:b1")
    assert (fourth.containers, upstream.newest_asked) == (0, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"postgresql-15": "1.2"},  # a locked package has a newer version
        {"libssl3": "3.0.2-1"},  # a package of the base has an upgrade
        {"postgresql-15": None},  # a locked package is gone from the indices
    ],
)
def test_a_change_in_what_the_image_holds_asks_apt(
    plan: Plan, tmp_path: Path, change: dict[str, str | None]
) -> None:
    small = bookworm_only(plan)
    upstream = FakeUpstream(tmp_path)
    upstream.states["bookworm"] = ("s1",)
    installed = {"libssl3": "3.0.1-1"}
    apt = FakeApt()
    apt.gate.set()
    apt.upgrade = ""  # nothing pending in the base
    minimal = small.get("postgresql-15-minimal-bookworm")
    first = Resolver(small, apt, upstream, lambda image_id: installed)
    first.lock_for(minimal, "drydock/debian:bookworm", "sha256:b1")
    offered = {
        p: v
        for lock in first.resolve("base-bookworm", "r", "sha256:b1").locks.values()
        for p, v in lock.items()
    } | installed
    for package, version in change.items():
        if version is None:
            offered.pop(package)
        else:
            offered[package] = version
    upstream.states["bookworm"] = ("s2",)
    upstream.offered["bookworm"] = offered
    again = Resolver(small, apt, upstream, lambda image_id: installed)
    again.lock_for(minimal, "drydock/debian:bookworm", "sha256:b1")
    assert (again.containers, again.from_archive) == (1, 0)


def test_kept_answers_cover_every_set_and_nothing_pending() -> None:
    answer = Answer(("s1",), {}, {("a",): {"a": "1"}})
    assert still_stands(answer, [("a",)], {}, {"a": "1"})
    assert not still_stands(answer, [("a",), ("b",)], {}, {"a": "1"})
    assert not still_stands(
        Answer(("s1",), {"x": ("1", "2")}, answer.locks), [("a",)], {}, {"a": "1"}
    )
