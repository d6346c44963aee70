"""Two vulnerability scanners, one list: which scanner saw each vulnerability of an image.

Trivy and Clair read different data and detect packages differently; a scanner that went
blind (an empty feed, a parser that stopped matching) looks exactly like a clean image.
Merged by (vulnerability id, package, installed version), every vulnerability says who
saw it, and the ones only one scanner saw are the disagreements a reviewer checks.
Built by pipeline.compliance.crosscheck; shown per image by every report format.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.models.findings import Severity, Source


@dataclass(frozen=True)
class MergedVulnerability:
    id: str  # "CVE-2026-0001"
    package: str  # the binary package, as the scanners name it
    installed_version: str
    fixed_version: str  # the lowest fixed version any scanner reported, "" = none
    severity: Severity  # the highest any scanner gave
    seen_by: tuple[Source, ...]  # in Source order
    title: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.id, self.package, self.installed_version)


@dataclass(frozen=True)
class CrossCheck:
    """The merged vulnerabilities of one image and the scanners they were merged from."""

    scanners: tuple[Source, ...] = ()  # vulnerability scanners that produced a report
    blind: tuple[Source, ...] = ()  # of those, the ones whose data could not see
    vulnerabilities: tuple[MergedVulnerability, ...] = ()

    @property
    def compared(self) -> bool:
        """True when two or more scanners reported, so that disagreement means something."""
        return len(self.scanners) > 1

    @property
    def disagreements(self) -> tuple[MergedVulnerability, ...]:
        """Vulnerabilities some reporting scanner did not see (empty with one scanner)."""
        if not self.compared:
            return ()
        return tuple(v for v in self.vulnerabilities if len(v.seen_by) < len(self.scanners))

    def only(self, source: Source) -> tuple[MergedVulnerability, ...]:
        """What this scanner alone saw."""
        return tuple(v for v in self.disagreements if v.seen_by == (source,))
