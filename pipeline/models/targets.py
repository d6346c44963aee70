"""What to build: targets and the plan (a DAG of targets) loaded from images/*.yaml.

A Target is everything the renderer and builder need to produce one image, already
validated; nothing downstream reads YAML again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    BASE = "base"
    OPERAND = "operand"
    OPERATOR = "operator"


class PackageSource(StrEnum):
    """Where an operand's PostgreSQL packages come from."""

    DEBIAN = "debian"
    PGDG = "pgdg"


@dataclass(frozen=True)
class Target:
    """One image to build."""

    name: str  # unique, e.g. "postgresql-15-minimal-bookworm", "operator", "base-bookworm"
    kind: Kind
    local_tag: str  # the tag in the local engine, e.g. "drydock/postgresql:15-minimal-bookworm"
    repository: str  # e.g. "postgresql", "postgresql-operator", "drydock/debian"
    release: str  # Debian codename
    template: str  # file under dockerfiles/, or "" for bases (built from a rootfs)
    version: str  # PostgreSQL major for operands, app version for the operator
    descriptor: str  # the file this target came from, for messages
    uid: int = 0
    gid: int = 0
    major: int | None = None
    flavour: str | None = None
    source: PackageSource | None = None
    packages: tuple[str, ...] = ()
    base: str = ""  # name of the base target, or a registry reference pinned by digest
    depends_on: tuple[str, ...] = ()
    # Built FROM another image target of the plan (a flavour on another flavour): its name
    # (also `base`), its flavour, and the packages it installs, so the version lock covers
    # everything the image holds.
    parent: str = ""
    parent_flavour: str = ""
    inherited_packages: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()  # dpkg path-exclude groups in effect (own and inherited)
    params: tuple[tuple[str, str], ...] = ()  # extra template values (sorted, hashable)

    def param(self, key: str, default: str = "") -> str:
        return dict(self.params).get(key, default)


@dataclass(frozen=True)
class Retired:
    """A target the descriptors describe but that is no longer built: past end of life."""

    name: str  # the target it would have been, e.g. "postgresql-13-minimal-bullseye"
    reason: str  # "PostgreSQL 13 reached end of life on 2025-11-13"
    since: dt.date  # the earliest end-of-life date that retired it


@dataclass(frozen=True)
class Plan:
    """Targets in dependency order (every target after the ones it depends on)."""

    targets: tuple[Target, ...]
    base_max_age_hours: float = 168.0
    mirror: str = ""  # Debian mirror URL, "" = use the host's apt sources
    descriptors: tuple[str, ...] = field(default=())
    retired: tuple[Retired, ...] = ()
    # PostgreSQL major -> end of life, from the operand descriptors (DISA 2.15).
    postgres_eol: tuple[tuple[int, dt.date], ...] = ()

    @property
    def releases(self) -> tuple[str, ...]:
        """The Debian releases the plan builds on, in plan order."""
        return tuple(dict.fromkeys(t.release for t in self.targets))

    def retired_reason(self, name: str) -> str:
        return next((r.reason for r in self.retired if r.name == name), "")

    def __iter__(self) -> Iterator[Target]:
        return iter(self.targets)

    def get(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)

    def select(self, names: tuple[str, ...]) -> Plan:
        """The given targets plus everything they depend on, in plan order."""
        wanted: set[str] = set()
        stack = list(names)
        while stack:
            n = stack.pop()
            if n in wanted:
                continue
            wanted.add(n)
            stack.extend(self.get(n).depends_on)
        return Plan(
            tuple(t for t in self.targets if t.name in wanted),
            self.base_max_age_hours,
            self.mirror,
            self.descriptors,
            self.retired,
            self.postgres_eol,
        )

    def families(self) -> list[list[str]]:
        """The image targets grouped with the targets built on them (a flavour on another
        flavour), each group in plan order: what must stay together on one machine."""
        groups: dict[str, list[str]] = {}
        for t in self.targets:
            if t.kind is Kind.BASE:
                continue
            root = t
            while root.parent:
                root = self.get(root.parent)
            groups.setdefault(root.name, []).append(t.name)
        return list(groups.values())

    def shard(self, index: int, count: int) -> Plan:
        """Shard index of count (1-based, round-robin over the families of image targets)
        plus the bases those targets need: how CI fans a nightly out over several machines.
        A flavour built on another stays in that one's shard, so no image is built twice."""
        families = self.families()
        return self.select(
            tuple(n for k, group in enumerate(families) if k % count == index - 1 for n in group)
        )
