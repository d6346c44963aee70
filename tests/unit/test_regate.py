"""What the nightly does with a published image that fails today's gate (pure)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import judge_image
from pipeline.compliance.native import catalogue
from pipeline.models.compliance import (
    RAN_DOCKLE,
    ImageScan,
    ImageVerdict,
    ScannerError,
    ran_by,
    ran_native,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.models.provenance import OsFacts, ScanProvenance, VulnDbInfo
from pipeline.models.publish import PublishedImage
from pipeline.publish.current import Current
from pipeline.stages.regate import ERROR, KEPT, PASS, REBUILD, Regate, classify
from pipeline.stages.run import RunOutcome, _withdraw

SCAN_CONFIG = Path(__file__).resolve().parents[2] / "scan-config"
CONTROLS = load_controls(SCAN_CONFIG / "controls.yaml")
POLICY = load_policy(SCAN_CONFIG / "policy.yaml")
NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
DB = VulnDbInfo("debian-archive", "feed", NOW, NOW, 262, (("debian 12", 215),))
EVERYTHING = frozenset({RAN_DOCKLE, *ran_by(Source.TRIVY), *(ran_native(i) for i in catalogue())})
REF = "127.0.0.1:5000/drydock/postgresql@sha256:" + "a" * 64


def _cve(fixed: str, status: Status = Status.FIXED) -> Finding:
    return Finding(
        "CVE-2026-84782",
        Source.TRIVY,
        Kind.VULNERABILITY,
        Severity.HIGH,
        "DTLS retransmits",
        package="libssl3",
        installed_version="3.0.20-1~deb12u2",
        fixed_version=fixed,
        status=status,
    )


def _verdict(*findings: Finding, db: VulnDbInfo | None = DB, errors: bool = False) -> ImageVerdict:
    scan = ImageScan(
        "published",
        findings,
        EVERYTHING,
        errors=(ScannerError(Source.TRIVY, "timed out"),) if errors else (),
        os=OsFacts("debian", "12.15", 124),
    )
    provenance = ScanProvenance(NOW, vuln_db=db)
    return judge_image(scan, CONTROLS, POLICY, (), NOW.date(), provenance)


def test_a_clean_published_image_stays() -> None:
    assert classify("pg", REF, _verdict()).outcome == PASS


def test_a_fixable_cve_rebuilds_and_names_the_fix() -> None:
    result = classify("pg", REF, _verdict(_cve("3.0.22-1~deb12u2")))
    assert result.outcome == REBUILD
    assert result.fixable == ("CVE-2026-84782 (libssl3 3.0.20-1~deb12u2 -> 3.0.22-1~deb12u2)",)
    assert "fixable vulnerabilities (CVE-2026-84782" in result.describe()


def test_an_unfixed_cve_is_recorded_and_the_image_kept() -> None:
    result = classify("pg", REF, _verdict(_cve("", Status.AFFECTED)))
    assert result.outcome == KEPT and not result.fixable
    assert result.describe().startswith("published image fails today's gate without a fixable")


def test_a_db_that_cannot_see_keeps_the_image_with_the_reason() -> None:
    stale = VulnDbInfo("debian-archive", "feed", NOW, NOW - dt.timedelta(days=3), 262, DB.platforms)
    result = classify("pg", REF, _verdict(db=stale))
    assert result.outcome == KEPT
    assert any("CIS-4.4" in r and "unverified" in r for r in result.reasons)


def test_a_scanner_failure_is_an_error() -> None:
    assert classify("pg", REF, _verdict(errors=True)).outcome == ERROR


def _current(target: str, digest: str) -> Current:
    image = PublishedImage(
        target, "127.0.0.1:5000", "drydock/postgresql", "15.20-1-minimal-bookworm", digest, True
    )
    return Current(image, "fingerprint", "")


def test_the_catalogs_stop_naming_an_image_that_failed_with_a_fixable_finding() -> None:
    failed = _current("pg-15", "sha256:" + "1" * 64)
    replaced = _current("pg-17", "sha256:" + "2" * 64)
    kept = _current("pg-16", "sha256:" + "3" * 64)
    run = RunOutcome()
    run.regate = {
        "pg-15": Regate("pg-15", REF, REBUILD, fixable=("CVE-2026-84782 (libssl3)",)),
        "pg-17": Regate("pg-17", REF, REBUILD, fixable=("CVE-2026-1 (zlib1g)",)),
        "pg-16": Regate("pg-16", REF, KEPT, ("CVE-2026-2 has no fix",)),
    }
    run.published = [dataclasses.replace(replaced.image, digest="sha256:" + "4" * 64)]
    named = _withdraw(run, {"pg-15": failed, "pg-16": kept, "pg-17": replaced})
    assert set(named) == {"pg-16", "pg-17"}  # the rebuilt one is replaced by run.published
    assert run.withdrawn == [
        f"pg-15: {REF} (published image has fixable vulnerabilities (CVE-2026-84782 (libssl3)))"
    ]
