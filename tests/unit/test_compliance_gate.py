"""The gate: policy thresholds, control statuses, waivers and their expiry, failing closed."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate, judge_image
from pipeline.compliance.mapping import controls_for, normalise_check_id
from pipeline.compliance.native import catalogue
from pipeline.models.compliance import (
    RAN_DOCKLE,
    ControlStatus,
    ImageScan,
    ImageVerdict,
    Policy,
    ScannerError,
    TrivyClass,
    VerdictStatus,
    Waiver,
    ran_by,
    ran_native,
    ran_trivy,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.models.provenance import OsFacts, ScanProvenance, VulnDbInfo

SCAN_CONFIG = Path(__file__).resolve().parents[2] / "scan-config"
CONTROLS = load_controls(SCAN_CONFIG / "controls.yaml")
POLICY = load_policy(SCAN_CONFIG / "policy.yaml")
TODAY = dt.date(2026, 11, 27)
IMAGE = "drydock/postgresql:15-minimal-bookworm"
EVERYTHING = frozenset({RAN_DOCKLE, *ran_by(Source.TRIVY), *(ran_native(i) for i in catalogue())})
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
BOOKWORM = OsFacts("debian", "12.15", 89)
FRESH_DB = VulnDbInfo(
    "debian-archive",
    "test",
    NOW - dt.timedelta(hours=2),
    NOW - dt.timedelta(hours=1),
    240,
    (("debian 12", 200), ("debian 13", 40)),
)
PROVENANCE = ScanProvenance(generated_at=NOW, vuln_db=FRESH_DB)


def vuln(
    cve: str = "CVE-2026-0001",
    severity: Severity = Severity.HIGH,
    fixed: str = "1.2-3",
    package: str = "libfoo1",
    source: Source = Source.TRIVY,
) -> Finding:
    return Finding(
        id=cve,
        source=source,
        kind=Kind.VULNERABILITY,
        severity=severity,
        title=f"{cve} in {package}",
        package=package,
        installed_version="1.2-2",
        fixed_version=fixed,
        status=Status.FIXED if fixed else Status.AFFECTED,
    )


def dockle(code: str, severity: Severity) -> Finding:
    return Finding(code, Source.DOCKLE, Kind.CHECKPOINT, severity, code, evidence=("alert",))


def native(check_id: str) -> Finding:
    spec = catalogue()[check_id]
    return Finding(
        check_id, Source.NATIVE, Kind.CHECKPOINT, spec.severity, spec.title, evidence=("/x",)
    )


def judge(
    *findings: Finding,
    ran: frozenset[str] = EVERYTHING,
    errors: tuple[ScannerError, ...] = (),
    waivers: tuple[Waiver, ...] = (),
    policy: Policy = POLICY,
    image: str = IMAGE,
    os: OsFacts | None = BOOKWORM,
    provenance: ScanProvenance | None = PROVENANCE,
    blind: tuple[tuple[str, str], ...] = (),
) -> ImageVerdict:
    scan = ImageScan(image=image, findings=findings, ran=ran, errors=errors, os=os, blind=blind)
    return judge_image(scan, CONTROLS, policy, waivers, TODAY, provenance)


def status(verdict: ImageVerdict, control_id: str) -> ControlStatus:
    return next(r.status for r in verdict.controls if r.control.id == control_id)


def test_nothing_found_by_every_scanner_passes() -> None:
    verdict = judge()
    assert verdict.status == VerdictStatus.PASS
    assert verdict.reasons == ()
    assert {r.status for r in verdict.controls} == {ControlStatus.PASS, ControlStatus.MANUAL}
    assert status(verdict, "CIS-4.5") == ControlStatus.MANUAL


def test_a_fixable_high_vulnerability_blocks_and_fails_cis_4_4() -> None:
    verdict = judge(vuln())
    assert verdict.status == VerdictStatus.FAIL
    assert status(verdict, "CIS-4.4") == ControlStatus.FAIL
    assert status(verdict, "DISA-2.15") == ControlStatus.FAIL
    assert any(r.startswith("blocking finding CVE-2026-0001") for r in verdict.reasons)
    assert "mandatory control CIS-4.4 (" in " ".join(verdict.reasons)


def test_a_medium_vulnerability_does_not_block() -> None:
    verdict = judge(vuln(severity=Severity.MEDIUM))
    assert verdict.status == VerdictStatus.PASS
    result = next(r for r in verdict.controls if r.control.id == "CIS-4.4")
    assert "1 vulnerabilities below the blocking threshold" in result.evidence


def test_the_threshold_is_configurable() -> None:
    strict = dataclasses.replace(POLICY, vulnerability_severity=Severity.MEDIUM)
    assert judge(vuln(severity=Severity.MEDIUM), policy=strict).status == VerdictStatus.FAIL


def test_unfixed_vulnerabilities_block_unless_ignore_unfixed() -> None:
    unfixed = vuln(fixed="", severity=Severity.CRITICAL)
    assert judge(unfixed).status == VerdictStatus.FAIL
    lenient = dataclasses.replace(POLICY, ignore_unfixed=True)
    verdict = judge(unfixed, policy=lenient)
    assert verdict.status == VerdictStatus.PASS
    (assessed,) = verdict.findings
    assert assessed.controls == ("CIS-4.4", "DISA-2.15")
    assert not assessed.blocking


def test_clair_vulnerabilities_count_too() -> None:
    verdict = judge(vuln(source=Source.CLAIR), ran=EVERYTHING | ran_by(Source.CLAIR))
    assert status(verdict, "CIS-4.4") == ControlStatus.FAIL


@pytest.mark.parametrize(
    ("severity", "blocking"),
    [(Severity.HIGH, True), (Severity.MEDIUM, True), (Severity.LOW, False)],
)
def test_dockle_fatal_and_warn_block_by_themselves(severity: Severity, blocking: bool) -> None:
    (assessed,) = judge(dockle("DKL-DI-0003", severity)).findings
    assert assessed.blocking is blocking
    assert assessed.controls == ()


def test_a_dockle_info_finding_still_fails_its_mandatory_control() -> None:
    verdict = judge(dockle("CIS-DI-0006", Severity.LOW))
    assert status(verdict, "CIS-4.6") == ControlStatus.FAIL
    assert status(verdict, "DISA-2.6") == ControlStatus.FAIL
    assert verdict.status == VerdictStatus.FAIL


def test_a_dockle_skip_proves_nothing_either_way() -> None:
    verdict = judge(dockle("DKL-LI-0001", Severity.UNKNOWN))
    assert status(verdict, "DISA-2.16") == ControlStatus.PASS
    assert verdict.status == VerdictStatus.PASS


@pytest.mark.parametrize(
    ("check_id", "controls"),
    [
        ("DD-ROOT-USER", {"CIS-4.1", "DISA-2.2"}),
        ("DD-SETUID", {"CIS-4.8", "DISA-2.3"}),
        ("DD-PRIVATE-KEY", {"CIS-4.10", "DISA-2.18"}),
        ("DD-SECRET-ENV", {"CIS-4.10", "DISA-2.9", "DISA-2.18"}),
        ("DD-EMPTY-PASSWORD", {"DISA-2.16"}),
        ("DD-DUPLICATE-ID", {"DISA-2.16"}),
        ("DD-APT-LISTS", {"DISA-2.8"}),
        ("DD-SSHD", {"DISA-2.1", "DISA-2.12"}),
        ("DD-APT-UNSIGNED", {"CIS-4.11", "DISA-2.11"}),
        ("DD-ADD-INSTRUCTION", {"CIS-4.9", "DISA-2.4"}),
        ("DD-PRIVILEGED-PORT", {"DISA-2.5"}),
        ("DD-DENIED-PACKAGE", {"CIS-4.3", "DISA-2.12"}),
        ("DD-NO-HEALTHCHECK", {"CIS-4.6", "DISA-2.6"}),
        ("DD-UNTRUSTED-BASE", {"CIS-4.2", "DISA-2.14", "DISA-2.17"}),
    ],
)
def test_native_findings_fail_their_controls(check_id: str, controls: set[str]) -> None:
    verdict = judge(native(check_id))
    (assessed,) = verdict.findings
    assert set(assessed.controls) == controls
    failed = {r.control.id for r in verdict.controls if r.status == ControlStatus.FAIL}
    assert failed == controls
    assert verdict.status == VerdictStatus.FAIL


def test_trivy_misconfiguration_ids_in_either_spelling() -> None:
    for check_id in ("DS002", "DS-0002", "AVD-DS-0002"):
        f = Finding(check_id, Source.TRIVY, Kind.MISCONFIGURATION, Severity.HIGH, "root")
        assert controls_for(f, CONTROLS) == ("CIS-4.1", "DISA-2.2")
    secret = Finding("aws-access-key-id", Source.TRIVY, Kind.SECRET, Severity.CRITICAL, "k")
    assert controls_for(secret, CONTROLS) == ("CIS-4.10", "DISA-2.9", "DISA-2.18")
    assert normalise_check_id("cve-2024-0001") == "CVE-2024-0001"


def test_a_scanner_error_fails_closed() -> None:
    error = ScannerError(Source.TRIVY, "timed out after 600s")
    verdict = judge(errors=(error,))
    assert verdict.status == VerdictStatus.ERROR
    assert not verdict.passed
    assert verdict.reasons[0] == "trivy failed: timed out after 600s"
    assert status(verdict, "CIS-4.4") == ControlStatus.ERROR
    assert status(verdict, "DISA-2.1") == ControlStatus.PASS  # native only
    report = evaluate([ImageScan(IMAGE, errors=(error,))], CONTROLS, POLICY, (), TODAY)
    assert report.verdict == "fail"


def test_a_control_nobody_checked_is_unverified_and_blocks() -> None:
    verdict = judge(ran=frozenset({RAN_DOCKLE, ran_trivy(TrivyClass.VULNERABILITY)}))
    assert status(verdict, "DISA-2.1") == ControlStatus.UNVERIFIED
    assert status(verdict, "CIS-4.1") == ControlStatus.PASS  # Dockle covers it
    assert verdict.status == VerdictStatus.FAIL
    assert any("DISA-2.1" in r and "unverified" in r for r in verdict.reasons)


def finding_waiver(subject: str = "CVE-2026-0001", **changes: object) -> Waiver:
    fields: dict[str, object] = {
        "justification": "not reachable from PostgreSQL",
        "approver": "security-team",
        "expires": dt.date(2026, 12, 31),
        "finding": subject,
    }
    fields.update(changes)
    return Waiver(**fields)  # type: ignore[arg-type]


def test_a_valid_waiver_accepts_a_finding() -> None:
    verdict = judge(vuln(), waivers=(finding_waiver(),))
    assert verdict.status == VerdictStatus.PASS
    assert status(verdict, "CIS-4.4") == ControlStatus.WAIVED
    assert verdict.findings[0].waived
    assert "approved by security-team" in verdict.findings[0].waived_by
    assert any(w.startswith("finding CVE-2026-0001 waived") for w in verdict.waived)


def test_a_waiver_is_valid_on_its_expiry_date_and_not_after() -> None:
    last_day = finding_waiver(expires=TODAY)
    assert judge(vuln(), waivers=(last_day,)).status == VerdictStatus.PASS
    expired = finding_waiver(expires=TODAY - dt.timedelta(days=1))
    verdict = judge(vuln(), waivers=(expired,))
    assert verdict.status == VerdictStatus.FAIL
    assert not verdict.findings[0].waived
    (note,) = verdict.expired_waivers
    assert note.endswith("expired on 2026-11-26")
    assert "CVE-2026-0001" in note
    report = evaluate([ImageScan(IMAGE)], CONTROLS, POLICY, (expired,), TODAY)
    assert report.expired_waivers == (note,)


@pytest.mark.parametrize(
    ("changes", "applies"),
    [
        ({"images": ("drydock/postgresql:15-*",)}, True),
        ({"images": ("drydock/operator:*",)}, False),
        ({"package": "libfoo1"}, True),
        ({"package": "libbar*"}, False),
    ],
)
def test_waiver_scope(changes: dict[str, Any], applies: bool) -> None:
    verdict = judge(vuln(), waivers=(finding_waiver(**changes),))
    assert verdict.findings[0].waived is applies


def test_a_control_waiver() -> None:
    waivers = (
        finding_waiver(finding="", control="CIS-4.6"),
        finding_waiver(finding="", control="DISA-2.6"),
    )
    verdict = judge(
        native("DD-NO-HEALTHCHECK"), dockle("CIS-DI-0006", Severity.LOW), waivers=waivers
    )
    assert verdict.status == VerdictStatus.PASS
    assert status(verdict, "CIS-4.6") == ControlStatus.WAIVED
    assert all(af.waived for af in verdict.findings)
    one_only = judge(native("DD-NO-HEALTHCHECK"), waivers=waivers[:1])
    assert one_only.status == VerdictStatus.FAIL
    assert not one_only.findings[0].waived


def test_an_expired_control_waiver_is_reported_on_the_failing_control() -> None:
    old = finding_waiver(finding="", control="DISA-2.5", expires=dt.date(2026, 1, 31))
    verdict = judge(native("DD-PRIVILEGED-PORT"), waivers=(old,))
    assert status(verdict, "DISA-2.5") == ControlStatus.FAIL
    assert verdict.expired_waivers == (
        "waiver for DISA-2.5, approved by security-team expired on 2026-01-31",
    )


def test_the_report_passes_only_when_every_image_passes() -> None:
    good = ImageScan("drydock/a:1", ran=EVERYTHING, os=BOOKWORM)
    bad = ImageScan("drydock/b:1", findings=(native("DD-SSHD"),), ran=EVERYTHING, os=BOOKWORM)
    assert evaluate([good], CONTROLS, POLICY, (), TODAY, PROVENANCE).verdict == "pass"
    report = evaluate([good, bad], CONTROLS, POLICY, (), TODAY, PROVENANCE)
    assert report.verdict == "fail"
    assert [v.status for v in report.images] == [VerdictStatus.PASS, VerdictStatus.FAIL]
    assert evaluate([], CONTROLS, POLICY, (), TODAY, PROVENANCE).verdict == "fail"
    assert report.provenance == PROVENANCE


def test_mandatory_controls_can_be_made_advisory() -> None:
    advisory = dataclasses.replace(POLICY, block_on_mandatory_controls=False)
    assert judge(native("DD-SETUID"), policy=advisory).status == VerdictStatus.PASS


def test_valid_waivers_that_matched_nothing_are_listed() -> None:
    used = finding_waiver()
    unused = finding_waiver("CVE-1999-0001")
    scan = ImageScan(IMAGE, findings=(vuln(),), ran=EVERYTHING, os=BOOKWORM)
    report = evaluate([scan], CONTROLS, POLICY, (used, unused), TODAY, PROVENANCE)
    assert report.verdict == "pass"
    assert len(report.unused_waivers) == 1
    assert "CVE-1999-0001" in report.unused_waivers[0]
