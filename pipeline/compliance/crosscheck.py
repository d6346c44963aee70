"""Merge Trivy's and Clair's vulnerability findings of one image (pure).

Findings are keyed by (vulnerability id, package, installed version): the same CVE in the
same installed package is one vulnerability whoever reported it. The merged entry keeps
the highest severity and the lowest fixed version any scanner gave, and which scanners saw
it; see pipeline.models.crosscheck for what the reports make of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.archive.version import compare_versions as compare
from pipeline.models.compliance import RAN_CLAIR, ImageScan, TrivyClass, ran_trivy
from pipeline.models.crosscheck import CrossCheck, MergedVulnerability
from pipeline.models.findings import Finding, Kind, Source

VULNERABILITY_SCANNERS: tuple[Source, ...] = (Source.TRIVY, Source.CLAIR)
RAN_KEYS = {Source.TRIVY: ran_trivy(TrivyClass.VULNERABILITY), Source.CLAIR: RAN_CLAIR}


def ran_key(source: Source) -> str:
    """The `ImageScan.ran` key that says this scanner's vulnerability scan could see."""
    return RAN_KEYS.get(source, source.value)


def _lowest(versions: Sequence[str]) -> str:
    fixed = sorted({v for v in versions if v})
    lowest = fixed[0] if fixed else ""
    for version in fixed[1:]:
        try:
            if compare(version, lowest) < 0:
                lowest = version
        except ValueError:
            continue
    return lowest


def _merge(group: Sequence[Finding]) -> MergedVulnerability:
    first = group[0]
    sources = {f.source for f in group}
    return MergedVulnerability(
        id=first.id,
        package=first.package,
        installed_version=first.installed_version,
        fixed_version=_lowest([f.fixed_version for f in group]),
        severity=max((f.severity for f in group), key=lambda s: s.rank),
        seen_by=tuple(s for s in VULNERABILITY_SCANNERS if s in sources),
        title=next((f.title for f in group if f.title), ""),
    )


def cross_check(scan: ImageScan) -> CrossCheck:
    """The image's vulnerabilities merged across the vulnerability scanners that reported."""
    blind = {s for s in VULNERABILITY_SCANNERS if ran_key(s) in dict(scan.blind)}
    reported = tuple(s for s in VULNERABILITY_SCANNERS if ran_key(s) in scan.ran or s in blind)
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for f in scan.findings:
        if f.kind is Kind.VULNERABILITY and f.source in VULNERABILITY_SCANNERS:
            groups.setdefault((f.id, f.package, f.installed_version), []).append(f)
    merged = sorted(
        (_merge(group) for group in groups.values()),
        key=lambda v: (-v.severity.rank, v.id, v.package, v.installed_version),
    )
    return CrossCheck(
        scanners=reported,
        blind=tuple(s for s in reported if s in blind),
        vulnerabilities=tuple(merged),
    )
