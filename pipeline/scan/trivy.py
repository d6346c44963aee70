"""Trivy: vulnerabilities, secrets and misconfigurations of an image, from Trivy's JSON.

`parse_trivy_report` reads Trivy's `--format json` report (SchemaVersion 2, with
`--list-all-pkgs`) and turns every vulnerability, secret and failed misconfiguration check
into a Finding (passed checks are not findings), and says what Trivy saw of the OS and its
package database: a vulnerability scan that found no OS or no packages proves nothing.
An empty or self-contradicting report (no image metadata, vulnerabilities of an OS it did
not detect or of packages it did not list) is a ScanError, never "nothing found".
`parse_trivy_sarif` reads Trivy's SARIF instead. The adapter prepares the vulnerability
DB once per scanner instance (i.e. per run, see `pipeline.scan.vulndb`), then scans each
image offline with `--skip-db-update`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ScanError, ToolError
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.models.provenance import OsFacts, VulnDbInfo, VulnDbSource
from pipeline.scan import vulndb
from pipeline.scan.base import Scanner, ScanOutput, ScanSettings, VulnDbSpec, validate
from pipeline.scan.sarif import SarifRule, parse_sarif
from pipeline.scan.sbom import parse_cyclonedx
from pipeline.tools import trivy as trivy_tool
from pipeline.tools.locate import locate

log = logging.getLogger(__name__)

NAME = "trivy"
SCHEMA_VERSION = 2

STATUS: Mapping[str, Status] = {
    "fixed": Status.FIXED,
    "affected": Status.AFFECTED,
    "under_investigation": Status.AFFECTED,
    "will_not_fix": Status.WILL_NOT_FIX,
    "end_of_life": Status.WILL_NOT_FIX,
    "fix_deferred": Status.FIX_DEFERRED,
}

# SARIF rule names Trivy writes (pkg/report/sarif.go) -> the kind of finding.
SARIF_KINDS: Mapping[str, Kind] = {
    "OsPackageVulnerability": Kind.VULNERABILITY,
    "LanguageSpecificPackageVulnerability": Kind.VULNERABILITY,
    "Misconfiguration": Kind.MISCONFIGURATION,
    "Secret": Kind.SECRET,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Vulnerability(_Model):
    VulnerabilityID: str = Field(min_length=1)
    PkgName: str
    PkgPath: str = ""
    InstalledVersion: str = ""
    FixedVersion: str = ""
    Status: str = ""
    Severity: Severity
    Title: str = ""
    PrimaryURL: str = ""
    VendorIDs: list[str] | None = None


class _Misconfiguration(_Model):
    ID: str = Field(min_length=1)
    Title: str = ""
    Message: str = ""
    Resolution: str = ""
    Severity: Severity
    Status: str = "FAIL"


class _Secret(_Model):
    RuleID: str = Field(min_length=1)
    Category: str = ""
    Severity: Severity
    Title: str = ""
    StartLine: int = 0
    Match: str = ""


class _Package(_Model):
    Name: str = Field(min_length=1)
    SrcName: str = ""


class _Result(_Model):
    Target: str
    Class: str = ""
    Type: str = ""
    Packages: list[_Package] | None = None  # with --list-all-pkgs
    Vulnerabilities: list[_Vulnerability] | None = None
    Misconfigurations: list[_Misconfiguration] | None = None
    Secrets: list[_Secret] | None = None


class _Os(_Model):
    Family: str = ""
    Name: str = ""
    EOSL: bool = False


class _Metadata(_Model):
    OS: _Os | None = None
    ImageID: str = ""
    DiffIDs: list[str] | None = None


class TrivyReport(_Model):
    SchemaVersion: int
    ArtifactName: str
    ArtifactType: str = ""
    Metadata: _Metadata | None = None
    Results: list[_Result] | None = None  # absent when nothing at all was detected


@dataclasses.dataclass(frozen=True)
class TrivyParsed:
    findings: tuple[Finding, ...]
    os: OsFacts  # family "" when Trivy detected no OS


def _vulnerability(result: _Result, v: _Vulnerability) -> Finding:
    status = STATUS.get(v.Status, Status.FIXED if v.FixedVersion else Status.UNKNOWN)
    evidence = tuple(e for e in (v.PrimaryURL, v.PkgPath, *(v.VendorIDs or ())) if e)
    return Finding(
        id=v.VulnerabilityID,
        source=Source.TRIVY,
        kind=Kind.VULNERABILITY,
        severity=v.Severity,
        title=v.Title,
        package=v.PkgName,
        installed_version=v.InstalledVersion,
        fixed_version=v.FixedVersion,
        status=status,
        evidence=evidence,
        target=result.Target,
    )


def _misconfiguration(result: _Result, m: _Misconfiguration) -> Finding:
    return Finding(
        id=m.ID,
        source=Source.TRIVY,
        kind=Kind.MISCONFIGURATION,
        severity=m.Severity,
        title=m.Title,
        evidence=tuple(e for e in (m.Message, m.Resolution) if e),
        target=result.Target,
    )


def _secret(result: _Result, s: _Secret) -> Finding:
    return Finding(
        id=s.RuleID,
        source=Source.TRIVY,
        kind=Kind.SECRET,
        severity=s.Severity,
        title=s.Title,
        evidence=tuple(e for e in (f"{result.Target}:{s.StartLine}", s.Category, s.Match) if e),
        target=result.Target,
    )


OS_PACKAGES = "os-pkgs"


def _check_image_report(report: TrivyReport) -> None:
    """An image report must describe an image, and agree with itself."""
    meta = report.Metadata
    if report.ArtifactType and report.ArtifactType != "container_image":
        raise ScanError(f"{NAME}: report is about a {report.ArtifactType}, not an image")
    if meta is None or not meta.ImageID or not meta.DiffIDs:
        raise ScanError(f"{NAME}: empty report: no image id or layers in its metadata")
    detected = meta.OS is not None and bool(meta.OS.Family)
    for result in report.Results or ():
        if result.Class != OS_PACKAGES:
            continue
        if not detected and (result.Packages or result.Vulnerabilities):
            raise ScanError(f"{NAME}: inconsistent report: OS packages but no OS detected")
        if result.Packages is None:
            continue
        listed = {p.Name for p in result.Packages}
        unknown = sorted({v.PkgName for v in result.Vulnerabilities or ()} - listed)
        if unknown:
            raise ScanError(
                f"{NAME}: inconsistent report: vulnerabilities of unlisted packages {unknown[:5]}"
            )


def _os_facts(report: TrivyReport) -> OsFacts:
    meta = report.Metadata
    os = meta.OS if meta is not None and meta.OS is not None else _Os()
    packages = sum(len(r.Packages or ()) for r in report.Results or () if r.Class == OS_PACKAGES)
    return OsFacts(os.Family, os.Name, packages if os.Family else 0, os.EOSL)


def _eol(facts: OsFacts) -> Finding:
    return Finding(
        id=f"EOSL-{facts.family}-{facts.version}",
        source=Source.TRIVY,
        kind=Kind.EOL,
        severity=Severity.HIGH,
        title=f"{facts.family} {facts.version} is past its end of support (no more fixes)",
        status=Status.WILL_NOT_FIX,
        evidence=(f"Trivy: {facts.family} {facts.version} EOSL",),
    )


def parse_trivy_report(text: str) -> TrivyParsed:
    """Trivy `--format json --list-all-pkgs` text of an image -> findings and OS facts."""
    report = validate(NAME, TrivyReport, text)
    if report.SchemaVersion != SCHEMA_VERSION:
        raise ScanError(f"{NAME}: report SchemaVersion {report.SchemaVersion}, expected 2")
    _check_image_report(report)
    facts = _os_facts(report)
    findings = list(_findings(report))
    if facts.eosl:
        findings.append(_eol(facts))
    return TrivyParsed(tuple(findings), facts)


def parse_trivy(text: str) -> tuple[Finding, ...]:
    """Trivy `--format json` text -> vulnerability, secret and failed-check findings
    (any artifact; `parse_trivy_report` also checks an image report and reads its OS)."""
    report = validate(NAME, TrivyReport, text)
    if report.SchemaVersion != SCHEMA_VERSION:
        raise ScanError(f"{NAME}: report SchemaVersion {report.SchemaVersion}, expected 2")
    return _findings(report)


def _findings(report: TrivyReport) -> tuple[Finding, ...]:
    findings: list[Finding] = []
    for result in report.Results or ():
        findings += [_vulnerability(result, v) for v in result.Vulnerabilities or ()]
        findings += [
            _misconfiguration(result, m)
            for m in result.Misconfigurations or ()
            if m.Status.upper() == "FAIL"
        ]
        findings += [_secret(result, s) for s in result.Secrets or ()]
    return tuple(findings)


_SARIF_LINE = re.compile(r"^(Package|Installed Version|Severity|Fixed Version): *(.*)$", re.M)


def _sarif_detail(rule: SarifRule, message: str, finding: Finding) -> Finding:
    fields = dict(_SARIF_LINE.findall(message))
    severity_name = fields.get("Severity") or next(
        (t for t in rule.tags if t in Severity.__members__), ""
    )
    kind = SARIF_KINDS.get(rule.name, finding.kind)
    fixed = fields.get("Fixed Version", "")
    return dataclasses.replace(
        finding,
        kind=kind,
        severity=Severity(severity_name)
        if severity_name in Severity.__members__
        else finding.severity,
        package=fields.get("Package", ""),
        installed_version=fields.get("Installed Version", ""),
        fixed_version=fixed,
        status=(Status.FIXED if fixed else Status.AFFECTED)
        if kind is Kind.VULNERABILITY
        else Status.AFFECTED,
    )


def parse_trivy_sarif(text: str) -> tuple[Finding, ...]:
    """Trivy `--format sarif` text -> Findings, package fields read from each message."""
    return parse_sarif(NAME, text, Source.TRIVY, Kind.VULNERABILITY, _sarif_detail)


class TrivyScanner(Scanner):
    """Runs the pinned Trivy offline against the run's DB; also writes CycloneDX SBOMs."""

    name: ClassVar[str] = NAME

    def __init__(self, settings: ScanSettings) -> None:
        super().__init__(settings)
        self._db_ready = False
        self._db_key = ""
        self.db: VulnDbInfo | None = None  # what the DB holds, once prepared

    @property
    def spec(self) -> VulnDbSpec:
        """The DB this scanner uses (settings.vuln_db, else db_repository as a mirror)."""
        if self.settings.vuln_db is not None:
            return self.settings.vuln_db
        if self.settings.db_repository:
            return VulnDbSpec(VulnDbSource.MIRROR, self.settings.db_repository)
        return VulnDbSpec(VulnDbSource.PUBLIC)

    @property
    def cache_dir(self) -> Path:
        """One cache per DB: Trivy does not re-fetch a DB it believes is fresh (metadata
        NextUpdate), so a cache shared between two DBs would scan with the old one."""
        spec = self.spec
        identity = self._db_key or f"{spec.source}:{spec.reference}"
        if spec.source == VulnDbSource.MIRROR and not self.settings.vuln_db:
            identity = spec.reference  # the layout earlier runs left
        key = hashlib.sha256(identity.encode()).hexdigest()[:12]
        return self.settings.cache_dir / f"trivy-{key}"

    @property
    def options(self) -> trivy_tool.TrivyOptions:
        spec = self.spec
        return trivy_tool.TrivyOptions(
            cache_dir=self.cache_dir,
            db_repository=spec.reference if spec.source == VulnDbSource.MIRROR else "",
            ignore_unfixed=self.settings.ignore_unfixed,
            timeout=self.settings.timeout,
            binary=self.settings.binary(NAME),
        )

    def version(self) -> str:
        binary = self.settings.binary(NAME)
        if binary is not None:
            return f"unknown ({binary})"
        try:
            return locate(NAME).version
        except ToolError:
            return "unknown"

    def _prepare_archive(self, inventory: Mapping[str, frozenset[str]]) -> None:
        archive = self.spec.archive
        if archive is None:
            raise ScanError(f"{NAME}: debian-archive DB chosen without archive settings")
        feed = vulndb.archive_feed(archive, inventory)
        self._db_key = feed.key
        built = self._run_tool(lambda: vulndb.archive_db(feed, archive.feed_cache / "trivy-db"))
        vulndb.install_db(built, self.cache_dir)
        suites = ", ".join(s.suite for s in feed.suites)
        self.db = vulndb.db_info(
            self.cache_dir / "db",
            VulnDbSource.DEBIAN_ARCHIVE,
            f"Debian archive ({suites}), feed {feed.key}",
            current_at=feed.verified_at,
            detail=vulndb.feed_detail(feed),
        )

    def prepare(self, inventory: Mapping[str, frozenset[str]] | None = None) -> None:
        """Make the vulnerability DB ready in the shared cache; later calls do nothing.
        debian-archive: update the feed for the releases and source packages of the
        images (`inventory`) and build its DB; public/mirror: let Trivy fetch it."""
        if self._db_ready:
            return
        spec = self.spec
        if spec.source == VulnDbSource.DEBIAN_ARCHIVE:
            self._prepare_archive(inventory or {})
        else:
            self._run_tool(lambda: trivy_tool.download_db(self.options))
            self.db = vulndb.db_info(
                self.cache_dir / "db",
                spec.source,
                spec.reference or "Trivy's default DB repository",
            )
        log.info(
            "vulnerability DB: %s, %d advisories (%s)",
            self.db.source if self.db else "?",
            self.db.advisories if self.db else 0,
            ", ".join(f"{p}: {n}" for p, n in self.db.platforms) if self.db else "",
        )
        self._db_ready = True

    def scan(self, image_tar: Path, ref: str) -> ScanOutput:
        start = time.monotonic()
        self.prepare()
        raw = self._run_tool(lambda: trivy_tool.scan_json(image_tar, self.options))
        parsed = parse_trivy_report(raw)
        return ScanOutput(NAME, ref, parsed.findings, raw, time.monotonic() - start, os=parsed.os)

    def sbom(self, image_tar: Path) -> str:
        """The image's CycloneDX SBOM (JSON text), checked to be a readable CycloneDX BOM."""
        raw = self._run_tool(lambda: trivy_tool.sbom_cyclonedx(image_tar, self.options))
        parse_cyclonedx(raw)
        return raw
