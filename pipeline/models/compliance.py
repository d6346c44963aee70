"""Controls, policy, waivers and verdicts: the data the compliance gate reads and writes.

The control catalogue (CIS Docker Benchmark 4.x, DISA Container Image Creation and
Deployment Guide 2.x) says which evidence proves each control; the policy says what blocks
a publish; waivers say what a named person accepted, until when. The gate turns
`ImageScan`s into a `GateReport`. Everything here is frozen data; YAML is read and validated
in `pipeline.compliance.config`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass, field
from enum import StrEnum

from pipeline.models.crosscheck import CrossCheck
from pipeline.models.findings import Finding, Kind, Severity, Source
from pipeline.models.provenance import DEFAULT_MAX_DB_AGE, OsFacts, ScanProvenance
from pipeline.models.sources import ImageSource


class TrivyClass(StrEnum):
    """The Trivy result classes a control can draw evidence from."""

    VULNERABILITY = "vulnerability"
    SECRET = "secret"  # noqa: S105 - a Trivy class, not a password
    MISCONFIGURATION = "misconfiguration"
    EOL = "eol"  # Trivy says the OS release is past its end of support (EOSL)


@dataclass(frozen=True)
class TrivyEvidence:
    """Findings of one Trivy class, optionally narrowed to check ids (e.g. DS-0002)."""

    cls: TrivyClass
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """Where the proof for a control comes from."""

    dockle: tuple[str, ...] = ()  # Dockle checkpoint codes, e.g. "CIS-DI-0001"
    trivy: tuple[TrivyEvidence, ...] = ()
    clair: tuple[TrivyClass, ...] = ()  # Clair reports vulnerabilities only
    native: tuple[str, ...] = ()  # native check ids, e.g. "DD-SETUID"

    @property
    def empty(self) -> bool:
        return not (self.dockle or self.trivy or self.clair or self.native)


@dataclass(frozen=True)
class Control:
    """One benchmark control: CIS-4.1 ... CIS-4.12, DISA-2.1 ... DISA-2.18 (and a few 3.x)."""

    id: str
    title: str
    automated: bool
    mandatory: bool
    evidence: Evidence = Evidence()
    reason: str = ""  # why a manual control cannot be automated
    note: str = ""  # what the automated evidence covers, when it covers only part
    # Evidence that must all be there (each group: one of its `ran` keys), beyond "some
    # source ran": e.g. (("trivy:vulnerability", "clair"), ("native:DD-PENDING-UPDATES",)).
    # Empty: any one source of `evidence` that ran and could see is enough.
    requires: tuple[tuple[str, ...], ...] = ()
    # What the automated evidence does NOT evaluate although the title promises it (DISA-2.16:
    # the STIG itself). Shown as the first evidence line of every result, in every format.
    partial: str = ""


@dataclass(frozen=True)
class Controls:
    """The whole catalogue, in file order."""

    controls: tuple[Control, ...]

    def get(self, control_id: str) -> Control | None:
        for control in self.controls:
            if control.id == control_id:
                return control
        return None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.controls)


@dataclass(frozen=True)
class NativeSettings:
    """Policy knobs of the native checks (pipeline.compliance.native)."""

    # Bases trusted besides Drydock's own: references / image ids whose layers an image
    # may start with (read from the local engine).
    trusted_bases: tuple[str, ...] = ()
    trusted_base_digests: tuple[str, ...] = ()
    denied_packages: tuple[str, ...] = ()  # for every flavour
    flavour_denied_packages: tuple[tuple[str, tuple[str, ...]], ...] = ()
    allowed_ports: tuple[str, ...] = ()  # "5432/tcp"; anything else fails DISA-2.13
    # Per plan target (glob on its name) -> the ports it may expose, instead of the above.
    target_ports: tuple[tuple[str, tuple[str, ...]], ...] = ()
    min_port: int = 1024
    setuid_allow: tuple[str, ...] = ()  # globs on paths
    world_writable_allow: tuple[str, ...] = ()
    secret_files_allow: tuple[str, ...] = ()  # globs on paths the secret-file checks skip
    accept_env_keys: tuple[str, ...] = ("GPG_KEY", "GPG_KEYS")
    require_numeric_user: bool = True

    def ports_for(self, target: str) -> tuple[str, ...]:
        """The ports an image of this plan target may expose: the union of every
        target_ports glob that matches it, else the global allowed_ports."""
        matched = [
            ports
            for glob, ports in self.target_ports
            if target and fnmatch.fnmatchcase(target, glob)
        ]
        if not matched:
            return self.allowed_ports
        return tuple(sorted({p for ports in matched for p in ports}))

    def denied_for(self, flavour: str) -> tuple[str, ...]:
        extra = dict(self.flavour_denied_packages).get(flavour, ())
        return tuple(sorted({*self.denied_packages, *extra}))


@dataclass(frozen=True)
class Policy:
    """What blocks a publish."""

    vulnerability_severity: Severity = Severity.HIGH  # block at or above
    ignore_unfixed: bool = False  # True: unfixed vulnerabilities never block
    dockle_severity: Severity = Severity.MEDIUM  # Dockle WARN and FATAL
    block_on_mandatory_controls: bool = True
    native: NativeSettings = NativeSettings()
    # The vulnerability DB: where it comes from (auto, public, mirror, debian-archive), the
    # mirror reference, and how old it may be before the vulnerability controls are
    # unverified.
    vuln_db_source: str = "auto"
    vuln_db_mirror: str = ""
    max_db_age: dt.timedelta = DEFAULT_MAX_DB_AGE
    # Vulnerability scanners the vulnerability controls cannot do without: each must run on
    # the image and be able to see (a stale or empty DB leaves the controls unverified).
    # Empty: one scanner that could see is enough (the controls' `requires`).
    required_scanners: tuple[Source, ...] = ()
    clair_url: str = ""  # Clair v4's API, when the policy file names one
    max_waiver_days: int = 90  # a waiver may not expire further ahead than this


@dataclass(frozen=True)
class Waiver:
    """An accepted risk: a finding id or a control id, in a scope, until a date (inclusive)."""

    justification: str
    approver: str
    expires: dt.date
    finding: str = ""
    control: str = ""
    images: tuple[str, ...] = ()  # globs; empty = every image
    package: str = ""

    @property
    def subject(self) -> str:
        return self.finding or self.control

    def expired(self, today: dt.date) -> bool:
        return today > self.expires

    def describe(self) -> str:
        scope = f" on {', '.join(self.images)}" if self.images else ""
        pkg = f" (package {self.package})" if self.package else ""
        return f"{self.subject}{pkg}{scope}, approved by {self.approver}"


@dataclass(frozen=True)
class ScannerError:
    """A scanner that crashed, timed out or produced unparsable output for an image."""

    source: Source
    message: str


@dataclass(frozen=True)
class ScannerRun:
    """One scanner on one image: how many findings, from which data, and whether it could
    see (`blind` says why not: a stale or empty vulnerability database, no OS detected)."""

    source: Source
    findings: int = 0
    seconds: float = 0.0
    database: str = ""
    blind: str = ""


# Names for `ImageScan.ran`: which evidence sources actually ran for an image.
RAN_DOCKLE = "dockle"
RAN_CLAIR = "clair"
# Trivy found the OS and read a non-empty package database: package-based controls can
# be judged. Granted by the gate from `ImageScan.os`, never reported by a scanner.
RAN_TRIVY_PACKAGES = "trivy:packages"


def ran_dockle(code: str) -> str:
    """A Dockle checkpoint, named in `ImageScan.blind` when Dockle cannot evaluate it."""
    return f"dockle:{code}"


def ran_trivy(cls: TrivyClass) -> str:
    return f"trivy:{cls.value}"


def ran_native(check_id: str) -> str:
    return f"native:{check_id}"


def ran_by(scanner: Source) -> frozenset[str]:
    """The `ran` keys a whole scanner run covers (native checks report their own)."""
    if scanner == Source.TRIVY:
        return frozenset(ran_trivy(c) for c in TrivyClass)
    if scanner == Source.NATIVE:
        raise ValueError("native checks report what ran: use NativeResult.ran")
    return frozenset({scanner.value})


@dataclass(frozen=True)
class ImageScan:
    """Everything the scanners said about one image: the gate's input."""

    image: str  # "drydock/postgresql:15-minimal-bookworm"
    findings: tuple[Finding, ...] = ()
    ran: frozenset[str] = frozenset()  # RAN_DOCKLE, ran_trivy(...), ran_native(...)
    errors: tuple[ScannerError, ...] = ()
    digest: str = ""
    os: OsFacts | None = None  # what Trivy saw of the OS and its packages (None: not run)
    runs: tuple[ScannerRun, ...] = ()  # scanners that answered, with their data
    # Sources that ran but could not see a problem, with why: (key, reason), e.g.
    # ("dockle:DKL-DI-0006", "no tag in a docker-save archive"), ("clair", "its matcher
    # holds no data"); a blind key is never granted.
    blind: tuple[tuple[str, str], ...] = ()


class ControlStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    WAIVED = "waived"
    MANUAL = "manual"
    ERROR = "error"  # a scanner it depends on failed
    UNVERIFIED = "unverified"  # an evidence source it requires did not run or could not see


@dataclass(frozen=True)
class ControlResult:
    control: Control
    status: ControlStatus
    evidence: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()  # ids of the findings that decided it
    waivers: tuple[str, ...] = ()  # descriptions of the waivers that applied

    @property
    def blocking(self) -> bool:
        return self.control.mandatory and self.status in {
            ControlStatus.FAIL,
            ControlStatus.ERROR,
            ControlStatus.UNVERIFIED,
        }


@dataclass(frozen=True)
class AssessedFinding:
    """A finding with what the gate made of it."""

    finding: Finding
    controls: tuple[str, ...]
    blocking: bool  # blocks by itself (policy thresholds), before waivers
    waived_by: str = ""  # description of the waiver that applies, "" if none

    @property
    def waived(self) -> bool:
        return bool(self.waived_by)


class VerdictStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    ERROR = "error"  # a scanner failed: not proven safe


@dataclass(frozen=True)
class ImageVerdict:
    image: str
    status: VerdictStatus
    reasons: tuple[str, ...]
    controls: tuple[ControlResult, ...]
    findings: tuple[AssessedFinding, ...]
    errors: tuple[ScannerError, ...] = ()
    waived: tuple[str, ...] = ()  # what was waived, with the waiver
    expired_waivers: tuple[str, ...] = ()  # "... expired on 2026-01-31"
    digest: str = ""
    os: OsFacts | None = None  # what Trivy saw of the OS and packages (None: not scanned)
    runs: tuple[ScannerRun, ...] = ()  # each scanner's data and whether it could see
    crosscheck: CrossCheck = field(default_factory=CrossCheck)  # the vulnerability findings, merged

    @property
    def passed(self) -> bool:
        return self.status == VerdictStatus.PASS


@dataclass(frozen=True)
class GateReport:
    today: dt.date
    images: tuple[ImageVerdict, ...]
    policy: Policy = field(default_factory=Policy)
    expired_waivers: tuple[str, ...] = ()  # every expired waiver in the file
    unused_waivers: tuple[str, ...] = ()  # valid waivers that matched nothing: clean them up
    provenance: ScanProvenance | None = None  # scanners, versions, vulnerability DB and age
    sources: tuple[ImageSource, ...] = ()  # where each image is defined (code scanning)

    def source_of(self, image: str) -> ImageSource | None:
        return next((s for s in self.sources if s.image == image), None)

    @property
    def passed(self) -> bool:
        """Every image passed; a report about no image at all proves nothing and fails."""
        return bool(self.images) and all(v.passed for v in self.images)

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"


__all__ = [
    "RAN_CLAIR",
    "RAN_DOCKLE",
    "RAN_TRIVY_PACKAGES",
    "AssessedFinding",
    "Control",
    "ControlResult",
    "ControlStatus",
    "Controls",
    "Evidence",
    "GateReport",
    "ImageScan",
    "ImageVerdict",
    "Kind",
    "NativeSettings",
    "Policy",
    "ScannerError",
    "ScannerRun",
    "TrivyClass",
    "TrivyEvidence",
    "VerdictStatus",
    "Waiver",
    "ran_by",
    "ran_dockle",
    "ran_native",
    "ran_trivy",
]
