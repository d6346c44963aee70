"""What every native check shares: its inputs, its catalogue entry, how it reports.

A native check is a pure function of an `ImageFilesystem` and a `CheckContext` that returns
`Finding`s (source "native", ids "DD-..."), or `None` when it could not run because the
caller gave it no evidence (then its controls are "unverified", never "pass").
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
    """What the build record says about pending updates (e.g. `apt-get -s upgrade` output).

    The caller runs the simulation (inside the image, at build time) and passes the
    result in, so the check stays pure. `source` says where the evidence came from.
    """

    source: str
    pending: tuple[PendingUpdate, ...] = ()


def parse_apt_simulation(text: str, source: str = "apt-get -s upgrade") -> UpdateEvidence:
    """Parse `apt-get -s upgrade` / `-s dist-upgrade` output into `UpdateEvidence`.

    Lines look like
    `Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])`.
    """
    pending = []
    for line in text.splitlines():
        match = _APT_INST.match(line.strip())
        if match:
            name, installed, candidate, origin = match.groups()
            pending.append(PendingUpdate(name, installed, candidate, origin.strip()))
    return UpdateEvidence(source=source, pending=tuple(pending))


@dataclass(frozen=True)
class NativeInputs:
    """Per-image facts the native checks cannot read from the image itself."""

    flavour: str = ""  # picks the package deny list
    updates: UpdateEvidence | None = None  # None: CIS-4.4's native evidence is missing
    known_base_digests: frozenset[str] | None = None  # bases Drydock built (None: not known)
    bootstrapped: bool = False  # built from a verified Debian rootfs, not FROM another image
    # PostgreSQL major -> end-of-life date (images/postgresql.yaml), and the date to judge
    # by; None: the end-of-life check has nothing to judge by and does not run.
    postgres_eol: tuple[tuple[int, dt.date], ...] | None = None
    today: dt.date | None = None


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


CheckFunc = Callable[[ImageFilesystem, CheckContext], list[Finding] | None]


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
