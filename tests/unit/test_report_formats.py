"""Report formats: the JSON contract, SARIF against the official schema, Markdown, JUnit, HTML."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import jsonschema  # type: ignore[import-untyped]
import pytest

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import catalogue
from pipeline.errors import InputError
from pipeline.models.compliance import (
    RAN_DOCKLE,
    GateReport,
    ImageScan,
    ScannerError,
    Waiver,
    ran_by,
    ran_native,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.models.provenance import OsFacts, ScanProvenance, ToolInfo, VulnDbInfo
from pipeline.report import FORMATS, render

ROOT = Path(__file__).resolve().parents[2]
SARIF_SCHEMA = ROOT / "tests" / "schemas" / "sarif" / "sarif-schema-2.1.0.json"
TODAY = dt.date(2026, 11, 27)
EVERYTHING = frozenset({RAN_DOCKLE, *ran_by(Source.TRIVY), *(ran_native(i) for i in catalogue())})
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
PROVENANCE = ScanProvenance(
    generated_at=NOW,
    scanners=(ToolInfo("dockle", "v0.4.15"), ToolInfo("trivy", "v0.74.0")),
    vuln_db=VulnDbInfo(
        "debian-archive",
        "Debian archive (bookworm-security), feed 0123abcd",
        NOW - dt.timedelta(hours=6),
        NOW - dt.timedelta(hours=5, minutes=30),
        262,
        (("debian 12", 215), ("debian 13", 47)),
        ("bookworm-security: Release of 2026-11-27 00:22 UTC (http://mirror.invalid)",),
    ),
)
BOOKWORM = OsFacts("debian", "12.15", 89)
TRIXIE = OsFacts("debian", "13.2", 92)


def sample_report() -> GateReport:
    controls = load_controls(ROOT / "scan-config" / "controls.yaml")
    policy = load_policy(ROOT / "scan-config" / "policy.yaml")
    cve = Finding(
        "CVE-2026-0001",
        Source.TRIVY,
        Kind.VULNERABILITY,
        Severity.HIGH,
        "overflow in libfoo",
        package="libfoo1",
        installed_version="1.0-1",
        fixed_version="1.0-2",
        status=Status.FIXED,
    )
    setuid = Finding(
        "DD-SETUID",
        Source.NATIVE,
        Kind.CHECKPOINT,
        Severity.MEDIUM,
        "setuid files",
        evidence=("/usr/bin/su 4755 (setuid)", "<script>alert(1)</script> | pipe"),
    )
    health = Finding("CIS-DI-0006", Source.DOCKLE, Kind.CHECKPOINT, Severity.LOW, "HEALTHCHECK")
    waivers = (
        Waiver(
            "upstream fix pending", "security-team", dt.date(2026, 12, 31), finding="CVE-2026-0001"
        ),
        Waiver("short-lived job image", "ops", dt.date(2026, 1, 31), control="CIS-4.6"),
    )
    scans = [
        ImageScan(
            "drydock/postgresql:15-minimal-bookworm",
            ran=EVERYTHING,
            digest="sha256:" + "1" * 64,
            os=BOOKWORM,
        ),
        ImageScan(
            "drydock/postgresql:17-standard-trixie",
            (cve, setuid, health),
            EVERYTHING,
            os=TRIXIE,
        ),
        ImageScan(
            "drydock/operator:1.0",
            ran=EVERYTHING - ran_by(Source.TRIVY),
            errors=(ScannerError(Source.TRIVY, "timed out after 600s"),),
        ),
    ]
    return evaluate(scans, controls, policy, waivers, TODAY, PROVENANCE)


@pytest.fixture(scope="module")
def report() -> GateReport:
    return sample_report()


def test_formats_are_an_explicit_mapping() -> None:
    assert set(FORMATS) == {"json", "sarif", "markdown", "junit", "html"}
    with pytest.raises(InputError, match="unknown report format 'pdf'"):
        render(sample_report(), "pdf")


def test_json_contract(report: GateReport) -> None:
    doc = json.loads(render(report, "json"))
    assert doc["verdict"] == "fail"
    assert doc["date"] == "2026-11-27"
    first, second, third = doc["images"]
    assert first["status"] == "pass"
    assert {c["id"] for c in first["controls"]} >= {"CIS-4.1", "DISA-2.2", "DISA-2.18"}
    control = next(c for c in second["controls"] if c["id"] == "CIS-4.8")
    assert control["status"] == "fail"
    assert any("/usr/bin/su" in e for e in control["evidence"])
    by_id = {f["id"]: f for f in second["findings"]}
    assert by_id["CVE-2026-0001"]["waived"] is True
    assert by_id["CVE-2026-0001"]["controls"] == ["CIS-4.4", "DISA-2.15"]
    assert by_id["CVE-2026-0001"]["source"] == "trivy"
    assert by_id["CVE-2026-0001"]["severity"] == "HIGH"
    assert by_id["DD-SETUID"]["controls"] == ["CIS-4.8", "DISA-2.3"]
    assert any("expired on 2026-01-31" in w for w in second["expired_waivers"])
    assert third["status"] == "error"
    assert third["scanner_errors"] == [{"source": "trivy", "message": "timed out after 600s"}]


def test_sarif_is_valid_sarif_2_1_0(report: GateReport) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    doc = json.loads(render(report, "sarif"))
    jsonschema.Draft4Validator(schema).validate(doc)
    run = doc["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert len(rules) == len(set(rules))
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"]
    waived = [r for r in run["results"] if r["ruleId"] == "CVE-2026-0001"]
    assert waived[0]["suppressions"][0]["status"] == "accepted"
    assert run["invocations"][0]["executionSuccessful"] is False
    assert "timed out" in run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]


def test_sarif_rejects_what_the_schema_rejects() -> None:
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({"version": "2.1.0", "runs": [{"bogus": 1}]})


def test_markdown_summary(report: GateReport) -> None:
    text = render(report, "markdown")
    assert text.startswith("## ❌ Drydock compliance gate: FAIL")
    assert "| `drydock/postgresql:15-minimal-bookworm` | ✅ pass |" in text
    assert "| CIS-4.8 | Ensure setuid and setgid permissions are removed | yes | ❌ fail |" in text
    assert "expired on 2026-01-31" in text
    assert "trivy failed: timed out after 600s" in text
    assert "\\| pipe" in text  # pipes in evidence cannot break the table


def test_junit_has_a_case_per_control_per_image(report: GateReport) -> None:
    root = ET.fromstring(render(report, "junit"))  # noqa: S314 - our own output
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [v.image for v in report.images]
    n_controls = len(report.images[0].controls)
    for suite in suites:
        names = [c.get("name", "") for c in suite.findall("testcase")]
        assert len(names) == n_controls + 1  # + the gate case
        assert names[0].startswith("CIS-4.1 ")
    second = suites[1]
    setuid = next(c for c in second.findall("testcase") if c.get("name", "").startswith("CIS-4.8"))
    assert setuid.find("failure") is not None
    manual = next(c for c in second.findall("testcase") if c.get("name", "").startswith("CIS-4.5"))
    assert manual.find("skipped") is not None
    assert int(root.get("failures", "0")) >= 1
    assert int(root.get("errors", "0")) >= 1
    assert int(root.get("tests", "0")) == 3 * (n_controls + 1)


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag == "tr" and "data-control" in found:
            self.rows.append(found)
        for key in ("src", "href"):
            value = found.get(key)
            if value and not value.startswith("#"):
                self.external.append(value)


def test_html_is_one_self_contained_checklist(report: GateReport) -> None:
    page = render(report, "html")
    parser = _Rows()
    parser.feed(page)
    expected = {(v.image, r.control.id) for v in report.images for r in v.controls}
    assert {(r["data-image"], r["data-control"]) for r in parser.rows} == expected
    assert parser.external == []
    assert not parser.tags & {"script", "link", "img", "iframe"}
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "expired on 2026-01-31" in page
    assert 'data-status="error"' in page


def test_every_renderer_returns_text_ending_with_a_newline(report: GateReport) -> None:
    outputs: dict[str, Any] = {name: render(report, name) for name in FORMATS}
    assert all(text.endswith("\n") for text in outputs.values())


PROVENANCE_FACTS = (
    "v0.4.15",  # each scanner's version
    "v0.74.0",
    "debian-archive",  # the DB's source
    "2026-11-27 06:00 UTC",  # its build time
    "5.5 h",  # its age at scan time
    "262 advisories",  # and what it holds
)


@pytest.mark.parametrize("fmt", ["markdown", "junit", "html"])
def test_text_formats_name_scanners_db_build_time_age_and_advisories(
    report: GateReport, fmt: str
) -> None:
    text = render(report, fmt)
    for fact in PROVENANCE_FACTS:
        assert fact in text, f"{fmt} lacks {fact!r}"
    assert "debian 12.15 (89 packages)" in text


def test_json_and_sarif_carry_the_provenance_as_data(report: GateReport) -> None:
    doc = json.loads(render(report, "json"))
    prov = doc["provenance"]
    assert prov["scanners"] == [
        {"name": "dockle", "version": "v0.4.15"},
        {"name": "trivy", "version": "v0.74.0"},
    ]
    db = prov["vulnerability_db"]
    assert (db["source"], db["advisories"], db["age_hours"]) == ("debian-archive", 262, 5.5)
    assert db["built_at"] == "2026-11-27T06:00:00+00:00"
    assert db["platforms"] == {"debian 12": 215, "debian 13": 47}
    assert db["max_age_hours"] == 36.0
    assert doc["images"][0]["os"]["platform"] == "debian 12"
    run = json.loads(render(report, "sarif"))["runs"][0]
    assert run["tool"]["extensions"] == prov["scanners"]
    assert run["properties"]["provenance"] == prov


def test_a_report_without_provenance_says_so() -> None:
    bare = dataclasses.replace(sample_report(), provenance=None)
    assert "Vulnerability DB: none recorded" in render(bare, "markdown")
    assert json.loads(render(bare, "json"))["provenance"]["vulnerability_db"] is None
