"""Two scanners, one verdict: merged vulnerabilities, disagreements, required and blind
scanners (pure: the gate on hand-made scans; the real scanners are in test_clair_real)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from pipeline.compliance.config import load_controls, load_policy, parse_policy
from pipeline.compliance.crosscheck import cross_check
from pipeline.compliance.gate import judge_image
from pipeline.compliance.native import catalogue
from pipeline.errors import PolicyError
from pipeline.models.compliance import (
    RAN_CLAIR,
    RAN_DOCKLE,
    ControlStatus,
    ImageScan,
    ImageVerdict,
    Policy,
    ScannerError,
    ScannerRun,
    ran_by,
    ran_native,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.models.provenance import OsFacts, ScanProvenance, VulnDbInfo

SCAN_CONFIG = Path(__file__).resolve().parents[2] / "scan-config"
CONTROLS = load_controls(SCAN_CONFIG / "controls.yaml")
POLICY = load_policy(SCAN_CONFIG / "policy.yaml")
BOTH = dataclasses.replace(POLICY, required_scanners=(Source.TRIVY, Source.CLAIR))
TODAY = dt.date(2026, 12, 2)
NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
BOOKWORM = OsFacts("debian", "12.15", 89)  # Trivy found the OS and its packages
DB = VulnDbInfo(
    "debian-archive",
    "test feed",
    NOW - dt.timedelta(hours=3),
    NOW - dt.timedelta(hours=1),
    262,
    (("debian 12", 215),),
)
NATIVE = frozenset(ran_native(i) for i in catalogue())
ALL = frozenset({RAN_DOCKLE, RAN_CLAIR, *ran_by(Source.TRIVY), *NATIVE})
VULN_CONTROLS = ("CIS-4.4", "DISA-2.15")


def vuln(
    source: Source,
    cve: str = "CVE-2026-1",
    package: str = "libssl3",
    severity: Severity = Severity.HIGH,
    fixed: str = "3.0.22-1~deb12u2",
) -> Finding:
    return Finding(
        id=cve,
        source=source,
        kind=Kind.VULNERABILITY,
        severity=severity,
        title=f"{cve} ({source.value})",
        package=package,
        installed_version="3.0.20-1~deb12u2",
        fixed_version=fixed,
        status=Status.FIXED if fixed else Status.AFFECTED,
    )


def scan(
    *findings: Finding,
    ran: frozenset[str] = ALL,
    blind: tuple[tuple[str, str], ...] = (),
    errors: tuple[ScannerError, ...] = (),
) -> ImageScan:
    runs = tuple(
        ScannerRun(s, blind="; ".join(r for k, r in blind if k == RAN_CLAIR))
        for s in (Source.TRIVY, Source.CLAIR)
    )
    return ImageScan(
        "drydock/postgresql:15", findings, ran, errors, os=BOOKWORM, runs=runs, blind=blind
    )


def judge(image: ImageScan, policy: Policy = POLICY) -> ImageVerdict:
    return judge_image(image, CONTROLS, policy, (), TODAY, ScanProvenance(NOW, vuln_db=DB))


def status(verdict: ImageVerdict, control: str) -> ControlStatus:
    return next(r.status for r in verdict.controls if r.control.id == control)


def test_findings_merge_by_id_package_and_installed_version() -> None:
    check = cross_check(
        scan(
            vuln(Source.TRIVY, severity=Severity.MEDIUM),
            vuln(Source.CLAIR, severity=Severity.CRITICAL, fixed="3.0.22-1~deb12u1"),
            vuln(Source.TRIVY, "CVE-2026-2"),
            vuln(Source.CLAIR, "CVE-2026-3", package="libc6"),
        )
    )
    assert check.scanners == (Source.TRIVY, Source.CLAIR) and check.compared
    first = next(v for v in check.vulnerabilities if v.id == "CVE-2026-1")
    assert first.seen_by == (Source.TRIVY, Source.CLAIR)
    assert first.severity is Severity.CRITICAL  # the highest any scanner gave
    assert first.fixed_version == "3.0.22-1~deb12u1"  # the lowest (dpkg order)
    assert [(v.id, v.seen_by) for v in check.disagreements] == [
        ("CVE-2026-2", (Source.TRIVY,)),
        ("CVE-2026-3", (Source.CLAIR,)),
    ]
    assert [v.id for v in check.only(Source.CLAIR)] == ["CVE-2026-3"]


def test_one_scanner_has_nothing_to_disagree_with() -> None:
    ran = ALL - {RAN_CLAIR}
    check = cross_check(scan(vuln(Source.TRIVY), ran=ran))
    assert check.scanners == (Source.TRIVY,) and not check.compared
    assert check.disagreements == ()


def test_a_blind_scanner_still_reports_and_is_named() -> None:
    why = "debian/updater data is 3.0 days old"
    check = cross_check(scan(vuln(Source.TRIVY), ran=ALL - {RAN_CLAIR}, blind=((RAN_CLAIR, why),)))
    assert check.scanners == (Source.TRIVY, Source.CLAIR) and check.blind == (Source.CLAIR,)
    assert [v.seen_by for v in check.disagreements] == [(Source.TRIVY,)]


def test_both_scanners_seeing_nothing_pass_the_vulnerability_controls() -> None:
    verdict = judge(scan(), BOTH)
    assert all(status(verdict, c) is ControlStatus.PASS for c in VULN_CONTROLS)


def test_a_required_scanner_that_did_not_run_leaves_them_unverified() -> None:
    verdict = judge(scan(ran=ALL - {RAN_CLAIR}), BOTH)
    for control in VULN_CONTROLS:
        result = next(r for r in verdict.controls if r.control.id == control)
        assert result.status is ControlStatus.UNVERIFIED
        assert "required scanner clair did not run" in result.evidence
    assert not verdict.passed
    # Nothing required (the default): Trivy that could see is enough.
    assert status(judge(scan(ran=ALL - {RAN_CLAIR})), "CIS-4.4") is ControlStatus.PASS


def test_a_blind_required_clair_leaves_them_unverified_even_when_trivy_sees() -> None:
    why = "Clair's matcher holds no vulnerability data at all (empty database)"
    blind_clair = scan(ran=ALL - {RAN_CLAIR}, blind=((RAN_CLAIR, why),))
    verdict = judge(blind_clair, BOTH)
    for control in VULN_CONTROLS:
        result = next(r for r in verdict.controls if r.control.id == control)
        assert result.status is ControlStatus.UNVERIFIED
        assert f"required scanner clair could not see: {why}" in result.evidence
    # Not required: Trivy's evidence carries the control, Clair's blindness is named.
    relaxed = next(r for r in judge(blind_clair).controls if r.control.id == "CIS-4.4")
    assert relaxed.status is ControlStatus.PASS
    assert any(why in e for e in relaxed.evidence)
    # What a blind Clair did see still fails the image.
    failing = judge(scan(vuln(Source.CLAIR), ran=ALL - {RAN_CLAIR}, blind=((RAN_CLAIR, why),)))
    assert status(failing, "CIS-4.4") is ControlStatus.FAIL


def test_a_failed_clair_is_an_error_not_a_missing_scanner() -> None:
    errors = (ScannerError(Source.CLAIR, "clair: POST ... failed: connection refused"),)
    verdict = judge(scan(ran=ALL - {RAN_CLAIR}, errors=errors), BOTH)
    assert all(status(verdict, c) is ControlStatus.ERROR for c in VULN_CONTROLS)


def test_the_verdict_carries_the_crosscheck_and_the_runs() -> None:
    verdict = judge(scan(vuln(Source.TRIVY), vuln(Source.CLAIR)), BOTH)
    assert [v.seen_by for v in verdict.crosscheck.vulnerabilities] == [(Source.TRIVY, Source.CLAIR)]
    assert [r.source for r in verdict.runs] == [Source.TRIVY, Source.CLAIR]


def test_required_scanners_in_the_policy_file() -> None:
    policy = parse_policy({"version": 1, "block": {"required_scanners": ["trivy", "clair"]}})
    assert policy.required_scanners == (Source.TRIVY, Source.CLAIR)
    assert POLICY.required_scanners == ()
    assert POLICY.max_db_age == dt.timedelta(hours=36)
    with pytest.raises(PolicyError, match=r"block.required_scanners.0: Input should be"):
        parse_policy({"version": 1, "block": {"required_scanners": ["dockle"]}})
    with pytest.raises(PolicyError, match=r"clair.url"):
        parse_policy({"version": 1, "clair": {"url": "ftp://clair"}})
    with pytest.raises(PolicyError, match=r"vulnerability_db.max_age_hours"):
        parse_policy({"version": 1, "vulnerability_db": {"max_age_hours": 0}})
