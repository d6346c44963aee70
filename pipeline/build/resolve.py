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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.build.freshness import apt_packages, parse_simulation, pending_upgrades
from pipeline.build.upstream import Answer, Upstream, load_answer, save_answer, still_stands
from pipeline.errors import ArchiveError
from pipeline.models.targets import Kind, Plan, Target
from pipeline.tools import docker

log = logging.getLogger(__name__)

Simulate = Callable[[str, Sequence[Sequence[str]]], tuple[str, list[str]]]
Installed = Callable[[str], Mapping[str, str]]  # image id -> {package: version}


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

    def __init__(
        self,
        plan: Plan,
        simulate: Simulate | None = None,
        upstream: Upstream | None = None,
        installed: Installed | None = None,
    ) -> None:
        self.plan = plan
        self.sets = install_sets(plan)
        self._simulate: Simulate = simulate or docker.apt_simulations
        self.upstream = upstream if installed is not None else None
        self._installed = installed
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._done: dict[str, Resolution] = {}
        self.containers = 0  # how many times apt was asked (for the build record)
        self.from_archive = 0  # answers that the signed indices showed still stand

    def _release(self, root: str) -> str | None:
        """The release of a base Drydock builds (its apt sources are known), else None."""
        if self.upstream is None or root not in self.plan.names():
            return None
        base = self.plan.get(root)
        return base.release if base.kind is Kind.BASE else None

    def _still_stands(self, root: str, image_id: str, sets: list[tuple[str, ...]]) -> Answer | None:
        """apt's kept answer for image_id, when the archive shows nothing it names changed."""
        release = self._release(root)
        if release is None or self.upstream is None or self._installed is None:
            return None
        kept = load_answer(self.upstream.store, image_id)
        if kept is None or any(s not in kept.locks for s in sets) or kept.pending:
            return None
        try:
            state = self.upstream.state(release)
            if kept.state == state:
                return kept
            if still_stands(kept, sets, self._installed(image_id), self.upstream.newest(release)):
                answer = Answer(state, {}, kept.locks)
                save_answer(self.upstream.store, image_id, answer)
                return answer
        except ArchiveError as err:
            log.warning("archive unreadable (%s): asking apt in %s", err, root)
        return None

    def _ask_apt(
        self, root: str, image_ref: str, image_id: str, sets: list[tuple[str, ...]]
    ) -> Answer:
        release = self._release(root)
        state: tuple[str, ...] = ()
        if release is not None and self.upstream is not None:
            try:  # the state first: a change while apt runs is seen next time
                state = self.upstream.state(release)
            except ArchiveError as err:
                log.warning("archive unreadable (%s): the answer is not kept", err)
        log.info("asking apt in %s for %d install set(s)", image_ref, len(sets))
        upgrade, installs = self._simulate(image_ref, sets)
        self.containers += 1
        answer = Answer(
            state,
            pending_upgrades(upgrade),
            {s: parse_simulation(text) for s, text in zip(sets, installs, strict=True)},
        )
        if state and self.upstream is not None:
            save_answer(self.upstream.store, image_id, answer)
        return answer

    def resolve(self, root: str, image_ref: str, image_id: str) -> Resolution:
        """apt's answer in the image `image_ref` (whose id is `image_id`), the base `root`
        of the plan names: every install set of the targets built on it."""
        with self._guard:
            lock = self._locks.setdefault(image_id, threading.Lock())
        with lock:
            if image_id in self._done:
                return self._done[image_id]
            sets = self.sets.get(root, [])
            answer = self._still_stands(root, image_id, sets)
            if answer is not None:
                self.from_archive += 1
                log.info("%s: nothing it holds changed in the archive; apt not asked", root)
            else:
                answer = self._ask_apt(root, image_ref, image_id, sets)
            done = Resolution(image_id, answer.pending, answer.locks)
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
