"""Package-version resolution, asked of apt once per base image for every target on it.

Each target's fingerprint covers the exact versions apt would install today (its lock,
see pipeline.build.freshness), and a base is reused only while apt has no upgrade pending
for it. Asking apt costs a throwaway container and an `apt-get update` (5-7 s on these
machines), so the question is asked once per base image for everything built on it: the
base's own pending upgrades and the install set of every target whose image starts from
that base (a flavour built on another flavour resolves its whole set on the Debian base,
so its lock covers every package it holds). The answer is shared by the threads of one
build; `pipeline.build.upstream` decides, before any container, whether apt's last answer
still stands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.build.freshness import apt_packages, parse_simulation, pending_upgrades
from pipeline.models.targets import Kind, Plan, Target
from pipeline.tools import docker

log = logging.getLogger(__name__)

Simulate = Callable[[str, Sequence[Sequence[str]]], tuple[str, list[str]]]


@dataclass(frozen=True)
class Resolution:
    """What apt said in one base image: pending upgrades, and the versions per install set."""

    image_id: str
    pending: dict[str, tuple[str, str]]  # package -> (installed, candidate)
    locks: dict[tuple[str, ...], dict[str, str]]  # install set -> {package: version}

    def lock(self, target: Target) -> dict[str, str]:
        return self.locks[apt_packages(target)]


def root_of(target: Target, plan: Plan) -> str:
    """The Debian base (a base target's name, or a registry reference) a target's image
    starts from, following flavours built on other flavours."""
    current = target
    while current.parent:
        current = plan.get(current.parent)
    return current.base


def install_sets(plan: Plan) -> dict[str, list[tuple[str, ...]]]:
    """Root base -> the distinct install sets of the plan's targets that start from it."""
    sets: dict[str, list[tuple[str, ...]]] = {}
    for target in plan:
        if target.kind is Kind.BASE:
            continue
        wanted = apt_packages(target)
        found = sets.setdefault(root_of(target, plan), [])
        if wanted not in found:
            found.append(wanted)
    return sets


class Resolver:
    """Answers "what would apt install?" for every target of a plan, one container per
    base image id, whichever thread asks first; the others wait for that answer."""

    def __init__(self, plan: Plan, simulate: Simulate | None = None) -> None:
        self.plan = plan
        self.sets = install_sets(plan)
        self._simulate: Simulate = simulate or docker.apt_simulations
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._done: dict[str, Resolution] = {}
        self.containers = 0  # how many times apt was asked (for the build record)

    def resolve(self, root: str, image_ref: str, image_id: str) -> Resolution:
        """apt's answer in the image `image_ref` (whose id is `image_id`), the base `root`
        of the plan names: every install set of the targets built on it."""
        with self._guard:
            lock = self._locks.setdefault(image_id, threading.Lock())
        with lock:
            if image_id in self._done:
                return self._done[image_id]
            sets = self.sets.get(root, [])
            log.info("asking apt in %s for %d install set(s)", image_ref, len(sets))
            upgrade, installs = self._simulate(image_ref, sets)
            self.containers += 1
            done = Resolution(
                image_id,
                pending_upgrades(upgrade),
                {s: parse_simulation(text) for s, text in zip(sets, installs, strict=True)},
            )
            self._done[image_id] = done
            return done

    def lock_for(self, target: Target, image_ref: str, image_id: str) -> dict[str, str]:
        """The versions apt would install for target on its root base (`image_ref`)."""
        root = root_of(target, self.plan)
        resolution = self.resolve(root, image_ref, image_id)
        if apt_packages(target) not in resolution.locks:
            # a target outside the plan the resolver was made for: ask for it alone
            _, installs = self._simulate(image_ref, [apt_packages(target)])
            self.containers += 1
            return parse_simulation(installs[0])
        return resolution.lock(target)
