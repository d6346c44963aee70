"""What the scanners and native checks found, normalised into one model.

Every scanner adapter (Dockle, Trivy, Clair, native checks) turns its output into
`Finding`s; the compliance stage maps findings to controls; the gate decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """Normalised severities, ordered from least to most severe by `rank`."""

    UNKNOWN = "UNKNOWN"
    INFO = "INFO"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class Source(StrEnum):
    DOCKLE = "dockle"
    TRIVY = "trivy"
    CLAIR = "clair"
    NATIVE = "native"


class Kind(StrEnum):
    VULNERABILITY = "vulnerability"
    SECRET = "secret"  # noqa: S105 - a finding kind, not a password
    MISCONFIGURATION = "misconfiguration"
    CHECKPOINT = "checkpoint"  # a Dockle checkpoint or a native check
    EOL = "eol"  # the image's OS release is past its end of support (Trivy's EOSL)


class Status(StrEnum):
    """For vulnerabilities: is a fix available? Other findings are always 'affected'."""

    AFFECTED = "affected"
    FIXED = "fixed"  # a fixed version exists
    WILL_NOT_FIX = "will_not_fix"
    FIX_DEFERRED = "fix_deferred"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Finding:
    id: str  # "CIS-DI-0001", "DKL-LI-0002", "CVE-2024-1234", "DD-SETUID", ...
    source: Source
    kind: Kind
    severity: Severity
    title: str
    package: str = ""
    installed_version: str = ""
    fixed_version: str = ""
    status: Status = Status.AFFECTED
    evidence: tuple[str, ...] = ()  # file paths, config keys, alerts: what proves it
    target: str = ""  # for Trivy: the scanned artifact part (OS, layer, file)

    @property
    def fixable(self) -> bool:
        return bool(self.fixed_version) or self.status == Status.FIXED
