"""Trivy: vulnerabilities, secrets and misconfigurations of an image, from Trivy's JSON.

`parse_trivy` reads Trivy's `--format json` report (SchemaVersion 2) and turns every
vulnerability, secret and failed misconfiguration check into a Finding; passed checks are
not findings. `parse_trivy_sarif` reads Trivy's SARIF instead. The adapter fetches the
vulnerability DB once per scanner instance (i.e. per run) into the shared cache, then
scans each image with `--skip-db-update`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ScanError
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.scan.base import Scanner, ScanOutput, ScanSettings, validate
from pipeline.scan.sarif import SarifRule, parse_sarif
from pipeline.scan.sbom import parse_cyclonedx
from pipeline.tools import trivy as trivy_tool

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


class _Result(_Model):
    Target: str
    Class: str = ""
    Type: str = ""
    Vulnerabilities: list[_Vulnerability] | None = None
    Misconfigurations: list[_Misconfiguration] | None = None
    Secrets: list[_Secret] | None = None


class TrivyReport(_Model):
    SchemaVersion: int
    ArtifactName: str
    ArtifactType: str = ""
    Results: list[_Result] | None = None  # absent when nothing at all was detected


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


def parse_trivy(text: str) -> tuple[Finding, ...]:
    """Trivy `--format json` text -> vulnerability, secret and failed-check findings."""
    report = validate(NAME, TrivyReport, text)
    if report.SchemaVersion != SCHEMA_VERSION:
        raise ScanError(f"{NAME}: report SchemaVersion {report.SchemaVersion}, expected 2")
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

    @property
    def cache_dir(self) -> Path:
        """One cache per DB reference: Trivy does not re-fetch a DB it believes is fresh
        (metadata NextUpdate), so a cache shared between two DBs would scan with the old."""
        key = hashlib.sha256(self.settings.db_repository.encode()).hexdigest()[:12]
        return self.settings.cache_dir / f"trivy-{key}"

    @property
    def options(self) -> trivy_tool.TrivyOptions:
        return trivy_tool.TrivyOptions(
            cache_dir=self.cache_dir,
            db_repository=self.settings.db_repository,
            ignore_unfixed=self.settings.ignore_unfixed,
            timeout=self.settings.timeout,
            binary=self.settings.binary(NAME),
        )

    def prepare(self, inventory: Mapping[str, frozenset[str]] | None = None) -> None:
        """Fetch the vulnerability DB into the shared cache; later calls do nothing."""
        if not self._db_ready:
            self._run_tool(lambda: trivy_tool.download_db(self.options))
            self._db_ready = True

    def scan(self, image_tar: Path, ref: str) -> ScanOutput:
        start = time.monotonic()
        self.prepare()
        raw = self._run_tool(lambda: trivy_tool.scan_json(image_tar, self.options))
        return ScanOutput(NAME, ref, parse_trivy(raw), raw, time.monotonic() - start)

    def sbom(self, image_tar: Path) -> str:
        """The image's CycloneDX SBOM (JSON text), checked to be a readable CycloneDX BOM."""
        raw = self._run_tool(lambda: trivy_tool.sbom_cyclonedx(image_tar, self.options))
        parse_cyclonedx(raw)
        return raw
