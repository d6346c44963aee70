"""A control passes only on evidence that could have shown the problem (pure gate tests).

Each test takes an image every scanner looked at and that passes, then removes one thing
the vulnerability or package evidence depends on, and checks the control turns
`unverified` (which blocks) with the reason in its evidence - or `fail` when a problem was
seen anyway.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from pipeline.compliance.config import load_controls, load_policy, parse_controls, parse_policy
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
    TrivyClass,
    VerdictStatus,
    ran_by,
    ran_dockle,
    ran_native,
    ran_trivy,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.models.provenance import OsFacts, ScanProvenance, VulnDbInfo

SCAN_CONFIG = Path(__file__).resolve().parents[2] / "scan-config"
CONTROLS = load_controls(SCAN_CONFIG / "controls.yaml")
POLICY = load_policy(SCAN_CONFIG / "policy.yaml")
TODAY = dt.date(2026, 12, 2)
NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
EVERYTHING = frozenset({RAN_DOCKLE, *ran_by(Source.TRIVY), *(ran_native(i) for i in catalogue())})
BOOKWORM = OsFacts("debian", "12.15", 89)
DB = VulnDbInfo(
    "debian-archive",
    "test feed",
    NOW - dt.timedelta(hours=3),
    NOW - dt.timedelta(hours=1),
    262,
    (("debian 12", 215), ("debian 13", 47)),
)
VULN_CONTROLS = ("CIS-4.4", "DISA-2.15")
PACKAGE_CONTROLS = ("CIS-4.3", "CIS-4.4", "CIS-4.11", "DISA-2.11", "DISA-2.12", "DISA-2.15")
DOCKLE_BLIND = ((ran_dockle("DKL-DI-0006"), "no tag in a docker-save archive"),)


def judge(
    *findings: Finding,
    ran: frozenset[str] = EVERYTHING,
    os: OsFacts | None = BOOKWORM,
    db: VulnDbInfo | None = DB,
    policy: Policy = POLICY,
    blind: tuple[tuple[str, str], ...] = DOCKLE_BLIND,
) -> ImageVerdict:
    scan = ImageScan("drydock/test:1", findings, ran, os=os, blind=blind)
    return judge_image(scan, CONTROLS, policy, (), TODAY, ScanProvenance(NOW, vuln_db=db))


def result(verdict: ImageVerdict, control: str) -> tuple[ControlStatus, str]:
    r = next(r for r in verdict.controls if r.control.id == control)
    return r.status, " | ".join(r.evidence)


def test_the_reference_image_passes_with_every_source_counted() -> None:
    verdict = judge()
    assert verdict.status is VerdictStatus.PASS, verdict.reasons
    status, evidence = result(verdict, "CIS-4.4")
    assert status is ControlStatus.PASS
    assert "trivy:vulnerability" in evidence and "native:DD-PENDING-UPDATES" in evidence


@pytest.mark.parametrize(
    ("db", "reason"),
    [
        (
            dataclasses.replace(DB, current_at=NOW - dt.timedelta(hours=37)),
            "is 37.0 h old, more than the policy's max_db_age of 36.0 h",
        ),
        (
            dataclasses.replace(DB, platforms=(("debian 13", 47),)),
            "holds no advisories for debian 12",
        ),
        (dataclasses.replace(DB, current_at=None), "age is unknown"),
        (None, "names no vulnerability DB"),
    ],
)
def test_a_db_that_cannot_see_leaves_the_vulnerability_controls_unverified(
    db: VulnDbInfo | None, reason: str
) -> None:
    verdict = judge(db=db)
    assert verdict.status is VerdictStatus.FAIL
    for control in VULN_CONTROLS:
        status, evidence = result(verdict, control)
        assert status is ControlStatus.UNVERIFIED, control
        assert reason in evidence
    # the package inventory itself was seen: the package controls stand
    assert result(verdict, "CIS-4.3")[0] is ControlStatus.PASS


def test_the_db_age_limit_is_the_policys() -> None:
    stale = dataclasses.replace(DB, current_at=NOW - dt.timedelta(hours=30))
    assert judge(db=stale).status is VerdictStatus.PASS
    strict = dataclasses.replace(POLICY, max_db_age=dt.timedelta(hours=24))
    assert result(judge(db=stale, policy=strict), "CIS-4.4")[0] is ControlStatus.UNVERIFIED


@pytest.mark.parametrize(
    ("os", "reason"),
    [
        (None, "detected no operating system"),
        (OsFacts("", "", 0), "detected no operating system"),
        (OsFacts("debian", "12.15", 0), "found debian 12.15 but no package database"),
    ],
)
def test_no_os_or_no_package_database_leaves_the_package_controls_unverified(
    os: OsFacts | None, reason: str
) -> None:
    verdict = judge(os=os)
    for control in PACKAGE_CONTROLS:
        status, evidence = result(verdict, control)
        assert status is ControlStatus.UNVERIFIED, control
        assert reason in evidence, control
    assert result(verdict, "CIS-4.1")[0] is ControlStatus.PASS  # not package-based


def test_cis_4_4_needs_the_pending_updates_check_as_well() -> None:
    verdict = judge(ran=EVERYTHING - {ran_native("DD-PENDING-UPDATES")})
    status, evidence = result(verdict, "CIS-4.4")
    assert status is ControlStatus.UNVERIFIED
    assert "requires native:DD-PENDING-UPDATES; native:DD-PENDING-UPDATES: did not run" in evidence


def test_clair_alone_satisfies_the_scan_requirement_when_trivy_is_blind() -> None:
    verdict = judge(ran=EVERYTHING | {RAN_CLAIR}, db=None)
    assert result(verdict, "CIS-4.4")[0] is ControlStatus.PASS


def test_a_fixable_cve_fails_even_when_other_evidence_is_missing() -> None:
    cve = Finding(
        "CVE-2026-84782",
        Source.TRIVY,
        Kind.VULNERABILITY,
        Severity.HIGH,
        "DTLS retransmits",
        package="libssl3",
        installed_version="3.0.20-1~deb12u2",
        fixed_version="3.0.22-1~deb12u2",
        status=Status.FIXED,
    )
    verdict = judge(cve, ran=EVERYTHING - {ran_native("DD-PENDING-UPDATES")})
    assert result(verdict, "CIS-4.4")[0] is ControlStatus.FAIL
    assert (
        "CVE-2026-84782" in next(r for r in verdict.controls if r.control.id == "CIS-4.4").findings
    )


def test_cis_4_10_needs_the_layer_aware_secret_scan() -> None:
    no_trivy = EVERYTHING - ran_by(Source.TRIVY)
    status, evidence = result(judge(ran=no_trivy), "CIS-4.10")
    assert status is ControlStatus.UNVERIFIED
    assert "requires trivy:secret" in evidence
    for control in ("DISA-2.9", "DISA-2.18"):
        assert result(judge(ran=no_trivy), control)[0] is ControlStatus.UNVERIFIED


def test_dockles_blind_tag_check_is_not_counted() -> None:
    status, evidence = result(judge(), "DISA-2.15")
    assert status is ControlStatus.PASS
    assert "dockle DKL-DI-0006 not counted: no tag in a docker-save archive" in evidence
    checked = evidence.split("checked by: ")[1]
    assert "dockle" not in checked


def test_end_of_life_fails_disa_2_15() -> None:
    eosl = Finding(
        "EOSL-debian-11.11",
        Source.TRIVY,
        Kind.EOL,
        Severity.HIGH,
        "debian 11.11 is past its end of support",
        status=Status.WILL_NOT_FIX,
    )
    pg = Finding(
        "DD-POSTGRESQL-EOL",
        Source.NATIVE,
        Kind.CHECKPOINT,
        Severity.HIGH,
        catalogue()["DD-POSTGRESQL-EOL"].title,
        evidence=("postgresql-13 13.16: PostgreSQL 13 reached end of life on 2025-11-13",),
    )
    for finding in (eosl, pg):
        verdict = judge(finding)
        assert result(verdict, "DISA-2.15")[0] is ControlStatus.FAIL
        assert verdict.status is VerdictStatus.FAIL
        assert result(verdict, "CIS-4.4")[0] is ControlStatus.PASS


def test_requires_is_validated_like_any_other_field() -> None:
    control: dict[str, Any] = {
        "id": "CIS-4.4",
        "title": "t",
        "automated": True,
        "mandatory": True,
        "evidence": {"trivy": [{"class": "vulnerability"}]},
        "requires": ["trivy:vulnerability | clair", "trivy:nope", "native:DD-NOPE"],
    }
    doc = {"version": 1, "controls": [control]}
    with pytest.raises(PolicyError) as info:
        parse_controls(doc, "controls.yaml")
    problems = [str(p) for p in info.value.problems]
    assert problems[0].startswith("controls.yaml: controls.0.requires.1: unknown evidence")
    assert problems[1] == "controls.yaml: controls.0.requires.2: unknown native check 'DD-NOPE'"
    ok = parse_controls({"version": 1, "controls": [{**control, "requires": ["clair"]}]})
    assert ok.controls[0].requires == ((RAN_CLAIR,),)


def test_the_policy_names_the_db_and_its_maximum_age() -> None:
    assert (POLICY.vuln_db_source, POLICY.max_db_age) == ("auto", dt.timedelta(hours=36))
    custom = parse_policy(
        {"version": 1, "vulnerability_db": {"source": "mirror", "mirror": "r.example/db:2"}}
    )
    assert (custom.vuln_db_source, custom.vuln_db_mirror) == ("mirror", "r.example/db:2")
    with pytest.raises(PolicyError, match="source mirror needs 'mirror: REF'"):
        parse_policy({"version": 1, "vulnerability_db": {"source": "mirror"}})
    with pytest.raises(PolicyError, match=r"vulnerability_db\.max_age_hours"):
        parse_policy({"version": 1, "vulnerability_db": {"max_age_hours": 0}})
    assert ran_trivy(TrivyClass.EOL) in ran_by(Source.TRIVY)
