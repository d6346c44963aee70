"""Dockle's JSON and SARIF reports -> Findings, checked against every recorded Dockle sample."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ScanError
from pipeline.models.compliance import RAN_CLAIR, ran_dockle
from pipeline.models.findings import Kind, Severity, Source
from pipeline.scan.dockle import BLIND_WITH_INPUT, parse_dockle, parse_dockle_sarif
from pipeline.stages.scan import blind_level

SAMPLES = Path(__file__).parents[1] / "fixtures" / "scanner-outputs"
README_JSON = SAMPLES / "dockle__README.md__json_output.json"
V031_JSON = SAMPLES / "dockle__thunder-spb_dh-docker-scanner__README.md__dockle_v0.3.1_json.json"
README_SARIF = SAMPLES / "dockle__README.md__sarif_output.sarif.json"
CIS_DI_0010_SARIF = SAMPLES / "dockle__pkg_report_testdata__CIS-DI-0010.sarif"
DKL_DI_0006_SARIF = SAMPLES / "dockle__pkg_report_testdata__DKL-DI-0006.sarif"
HADOLINT = SAMPLES / "hadolint__thunder-spb_dh-docker-scanner__README.md__hadolint_v1.19_json.json"


def test_readme_json_every_detail_is_a_checkpoint_finding() -> None:
    findings = parse_dockle(README_JSON.read_text())
    assert [f.id for f in findings] == [
        "CIS-DI-0001",
        "CIS-DI-0005",
        "CIS-DI-0006",
        "CIS-DI-0008",
        "CIS-DI-0009",
        "CIS-DI-0010",
        "CIS-DI-0010",
        "DKL-DI-0002",
        "DKL-DI-0005",
        "DKL-LI-0001",
    ]
    assert {f.source for f in findings} == {Source.DOCKLE}
    assert {f.kind for f in findings} == {Kind.CHECKPOINT}
    # summary says fatal 6, warn 2, info 2: one finding per detail, levels mapped.
    by_severity = [f.severity for f in findings]
    assert by_severity.count(Severity.HIGH) == 6
    assert by_severity.count(Severity.MEDIUM) == 2
    assert by_severity.count(Severity.LOW) == 2


def test_readme_json_keeps_titles_and_alerts() -> None:
    findings = {(f.id, f.title): f for f in parse_dockle(README_JSON.read_text())}
    root = findings[("CIS-DI-0001", "Create a user for the container")]
    assert root.severity is Severity.MEDIUM
    assert root.evidence == ("Last user should not be root",)
    suid = findings[("CIS-DI-0008", "Remove setuid and setgid permissions in the images")]
    assert suid.evidence == ("Found setuid file: usr/lib/openssh/ssh-keysign urwxr-xr-x",)
    env = findings[("CIS-DI-0010", "Do not store secrets in ENVIRONMENT variables")]
    assert env.evidence == ("Suspicious ENV key found : MYSQL_PASSWD",)
    files = findings[("CIS-DI-0010", "Do not store secret files")]
    assert files.severity is Severity.HIGH
    assert files.evidence == ("Suspicious filename found : app/credentials.json ",)
    assert findings[("DKL-LI-0001", "Avoid empty password")].evidence == (
        "No password user found! username : nopasswd",
    )


def test_v031_json_with_skip_count() -> None:
    findings = parse_dockle(V031_JSON.read_text())
    assert [(f.id, f.severity) for f in findings] == [
        ("CIS-DI-0001", Severity.MEDIUM),
        ("DKL-DI-0006", Severity.MEDIUM),
        ("CIS-DI-0005", Severity.LOW),
        ("CIS-DI-0006", Severity.LOW),
    ]
    assert findings[1].evidence == ("Avoid 'latest' tag",)


def test_readme_sarif() -> None:
    findings = parse_dockle_sarif(README_SARIF.read_text())
    assert [f.id for f in findings] == [
        "CIS-DI-0009",
        "CIS-DI-0010",
        "DKL-DI-0005",
        "DKL-LI-0001",
        "CIS-DI-0005",
        "CIS-DI-0008",
        "CIS-DI-0001",
        "CIS-DI-0006",
    ]
    levels = {f.id: f.severity for f in findings}
    assert levels["CIS-DI-0009"] is Severity.HIGH  # error
    assert levels["CIS-DI-0005"] is Severity.LOW  # note
    assert levels["CIS-DI-0001"] is Severity.UNKNOWN  # "none" in this old writer
    suid = next(f for f in findings if f.id == "CIS-DI-0008")
    assert suid.title == "Confirm safety of setuid/setgid files"
    assert suid.evidence[0].count("setuid file:") == 10
    assert suid.evidence[0].count("setgid file:") == 5
    assert "urwxr-xr-x usr/lib/openssh/ssh-keysign" in suid.evidence[0]


def test_current_sarif_writer_goldens() -> None:
    (cred,) = parse_dockle_sarif(CIS_DI_0010_SARIF.read_text())
    assert cred.id == "CIS-DI-0010"
    assert cred.severity is Severity.HIGH
    assert cred.title == "Do not store credential in environment variables/files"
    assert cred.evidence == ("Suspicious filename found", "/some/abs/path")
    assert cred.target == "/some/abs/path"
    (latest,) = parse_dockle_sarif(DKL_DI_0006_SARIF.read_text())
    assert (latest.id, latest.severity, latest.target) == (
        "DKL-DI-0006",
        Severity.MEDIUM,
        "alpine:latest",
    )


def test_skip_ignore_and_null_details() -> None:
    report: dict[str, Any] = {
        "image": "x.tar",
        "summary": {"fatal": 0, "warn": 0, "info": 0, "skip": 1, "pass": 15},
        "details": [
            {
                "code": "DKL-LI-0001",
                "title": "Avoid empty password",
                "level": "SKIP",
                "alerts": ["failed to detect etc/shadow,etc/master.passwd"],
            },
            {"code": "CIS-DI-0005", "title": "t", "level": "IGNORE", "alerts": None},
        ],
    }
    skip, ignored = parse_dockle(json.dumps(report))
    assert skip.severity is Severity.UNKNOWN  # could not look: not proven safe
    assert ignored.severity is Severity.INFO and ignored.evidence == ()
    report["details"] = None
    report["summary"]["skip"] = 0
    assert parse_dockle(json.dumps(report)) == ()


def test_a_summary_that_contradicts_its_details_is_an_error() -> None:
    report: dict[str, Any] = {
        "image": "x.tar",
        "summary": {"fatal": 1, "warn": 0, "info": 0, "skip": 0, "pass": 15},
        "details": [],  # says one FATAL, lists none: the FATAL was lost somewhere
    }
    with pytest.raises(ScanError, match="summary counts 1 FATAL but 0 are listed"):
        parse_dockle(json.dumps(report))


def test_a_report_that_checked_nothing_is_an_error() -> None:
    empty = {"image": "x.tar", "summary": {"fatal": 0, "warn": 0, "info": 0, "pass": 0}}
    with pytest.raises(ScanError, match="empty report"):
        parse_dockle(json.dumps(empty))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "dockle: unable to initialize a image struct",
        README_JSON.read_text()[: len(README_JSON.read_text()) // 2],  # truncated
        "[]",
        '{"details": []}',  # no summary
        '{"summary": {"fatal": 0, "warn": 0, "info": 0, "pass": 16}, "details": '
        '[{"code": "CIS-DI-0001", "level": "BOGUS", "alerts": []}]}',
        '{"summary": {"fatal": -1, "warn": 0, "info": 0, "pass": 16}}',
    ],
)
def test_garbage_is_a_scan_error_naming_dockle(text: str) -> None:
    with pytest.raises(ScanError, match=r"^dockle: "):
        parse_dockle(text)


def test_other_tools_output_is_rejected() -> None:
    with pytest.raises(ScanError, match=r"^dockle: "):
        parse_dockle(HADOLINT.read_text())  # a hadolint report is not a Dockle report
    with pytest.raises(ScanError, match=r"^dockle: "):
        parse_dockle_sarif(README_JSON.read_text())
    with pytest.raises(ScanError, match=r"^dockle: "):
        parse_dockle_sarif(CIS_DI_0010_SARIF.read_text()[:300])


def test_only_the_structural_tag_blindness_is_quiet() -> None:
    """Dockle's tag check on an archive is blind on every image of every run: logged at
    INFO (the reports keep it). Anything else a scanner could not see stays a WARNING."""
    structural = [(ran_dockle("DKL-DI-0006"), BLIND_WITH_INPUT["DKL-DI-0006"])]
    assert blind_level(structural) == logging.INFO
    assert blind_level([(RAN_CLAIR, "debian/updater data is 40 h old")]) == logging.WARNING
    assert blind_level([*structural, (ran_dockle("CIS-DI-0001"), "x")]) == logging.WARNING
