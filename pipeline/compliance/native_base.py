"""What every native check shares: its inputs, its catalogue entry, how it reports.

A native check is a pure function of an `ImageFilesystem` and a `CheckContext` that returns
`Finding`s (source "native", ids "DD-..."), or `None` / `NotRun(reason)` when it could not
run because the caller gave it no evidence or the image hides what it needs (then its
controls are "unverified", never "pass", and the reason is shown).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pipeline.compliance.imagefs import ImageFilesystem
from pipeline.models.compliance import NativeSettings
from pipeline.models.findings import Finding, Kind, Severity, Source

_APT_INST = re.compile(r"^Inst\s+(\S+)\s+\[([^\]]+)\]\s+\((\S+)\s+([^\[)]*)")
# "3 upgraded, 0 newly installed, 0 to remove and 1 not upgraded."
_APT_SUMMARY = re.compile(
    r"^(\d+) upgraded, (\d+) newly installed, (\d+) to remove and (\d+) not upgraded\.?$"
)
_APT_LOCAL = re.compile(r"^(\S+?)/\S*\s+(\S+)\s+\S+\s+\[installed,local\]")
HELD_MARK = "@@drydock-held"
LOCAL_MARK = "@@drydock-local"


@dataclass(frozen=True)
class PendingUpdate:
    """A package with a newer version available when the image was checked."""

    package: str
    installed: str
    candidate: str
    origin: str = ""  # "Debian-Security:12/stable-security"

    @property
    def security(self) -> bool:
        return "security" in self.origin.lower()


@dataclass(frozen=True)
class UpdateEvidence:
    """What apt says about the image right now (`apt-get -s dist-upgrade`, holds ignored).

    The caller runs the simulation (in a throwaway container of the image) and passes the
    result in, so the check stays pure. `source` says where the evidence came from;
    `held` names the packages held back (`apt-mark showhold`), whose pending upgrades
    count like any other; `local` the installed packages no archive offers
    (`apt list --installed`: `[installed,local]`), i.e. installed from a file.
    """

    source: str
    pending: tuple[PendingUpdate, ...] = ()
    held: tuple[str, ...] = ()
    local: tuple[str, ...] = ()  # "name version"


class AptOutputError(ValueError):
    """apt's output does not prove what it should (no summary line: apt stopped early)."""


def parse_apt_simulation(text: str, source: str = "apt-get -s dist-upgrade") -> UpdateEvidence:
    """Parse `apt-get -s dist-upgrade` output (plus Drydock's held/local markers).

    Lines look like
    `Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])`.
    The `N upgraded, ...` summary must be there, and must agree with the `Inst` lines:
    output without it is an apt that stopped early, and proves nothing (AptOutputError).
    """
    pending: list[PendingUpdate] = []
    held: list[str] = []
    local: list[str] = []
    summary: tuple[int, ...] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        match = _APT_INST.match(line)
        if match:
            name, installed, candidate, origin = match.groups()
            pending.append(PendingUpdate(name, installed, candidate, origin.strip()))
            continue
        if line.startswith(HELD_MARK + " "):
            held += line.removeprefix(HELD_MARK + " ").split()
            continue
        if line.startswith(LOCAL_MARK + " "):
            local += parse_local_packages(line.removeprefix(LOCAL_MARK + " "))
            continue
        found = _APT_SUMMARY.match(line)
        if found:
            summary = tuple(int(n) for n in found.groups())
    if summary is None:
        raise AptOutputError(f"{source}: no 'N upgraded, ...' summary line (apt stopped early?)")
    if summary[0] != len(pending):
        raise AptOutputError(
            f"{source}: the summary says {summary[0]} upgraded but there are {len(pending)} "
            "upgrade lines"
        )
    return UpdateEvidence(
        source=source, pending=tuple(pending), held=tuple(sorted(set(held))), local=tuple(local)
    )


def parse_local_packages(text: str) -> tuple[str, ...]:
    """`name version` of each `apt list --installed` line marked `[installed,local]`."""
    found = []
    for line in text.splitlines():
        match = _APT_LOCAL.match(line.strip())
        if match:
            found.append(f"{match.group(1)} {match.group(2)}")
    return tuple(found)


@dataclass(frozen=True)
class NotRun:
    """A check that could not judge this image, and why (its controls: `unverified`)."""

    reason: str


@dataclass(frozen=True)
class TrustedBase:
    """A base image trusted by content: its name and its layers (rootfs diff_ids, bottom
    first). An image is built on it when its own layers start with these."""

    name: str
    layers: tuple[str, ...]


@dataclass(frozen=True)
class NativeInputs:
    """Per-image facts the native checks cannot read from the image itself."""

    flavour: str = ""  # picks the package deny list
    target: str = ""  # the plan target it was built from (picks its allowed ports)
    updates: UpdateEvidence | None = None  # None: CIS-4.4's native evidence is missing
    updates_problem: str = ""  # why `updates` is None (the simulation failed), for reports
    # Bases trusted by content (Drydock's own, pinned in a descriptor, --trusted-base);
    # None or empty: nothing to judge the base by, CIS-4.2 / DISA-2.14 / 2.17 unverified.
    trusted_bases: tuple[TrustedBase, ...] | None = None
    bootstrapped: bool = False  # built from a verified Debian rootfs, not FROM another image
    # PostgreSQL major -> end-of-life date (images/postgresql.yaml), and the date to judge
    # by; None: the end-of-life check has nothing to judge by and does not run.
    postgres_eol: tuple[tuple[int, dt.date], ...] | None = None
    today: dt.date | None = None
    # The Dockerfile the image was built from (Drydock's rendered one), None: not known.
    dockerfile: str | None = None
    # DISA-2.13: the ports this image may EXPOSE, when the caller knows better than the
    # policy; None: the policy's target_ports for `target`, else its allowed_ports.
    allowed_ports: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CheckContext:
    settings: NativeSettings
    inputs: NativeInputs


@dataclass(frozen=True)
class CheckSpec:
    """One native check id: what it proves and how bad a hit is."""

    id: str
    title: str
    severity: Severity


CheckFunc = Callable[[ImageFilesystem, CheckContext], list[Finding] | NotRun | None]


@dataclass(frozen=True)
class NativeCheck:
    """A function and the check ids it can report (one function may report several ids)."""

    specs: tuple[CheckSpec, ...]
    func: CheckFunc

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.specs)


def hit(spec: CheckSpec, evidence: Iterable[str]) -> list[Finding]:
    """One finding carrying all the evidence, or none if there is no evidence."""
    items = tuple(evidence)
    if not items:
        return []
    return [
        Finding(
            id=spec.id,
            source=Source.NATIVE,
            kind=Kind.CHECKPOINT,
            severity=spec.severity,
            title=spec.title,
            evidence=items,
        )
    ]


def matches_any(path: str, globs: Sequence[str]) -> bool:
    """Glob match on the image path, with or without its leading slash."""
    full = "/" + path
    return any(fnmatch.fnmatchcase(full, g) or fnmatch.fnmatchcase(path, g) for g in globs)


def mode_text(mode: int) -> str:
    return f"{mode:04o}"
