"""SARIF against GitHub code scanning's ingestion rules, not only the JSON schema.

The rules (docs.github.com, "SARIF support for code scanning" and "SARIF results exceed
limits"): at most 20 runs per file and 25,000 results per run (only the top 5,000 shown,
by severity); every result needs a location (upload fails with "expected at least one
location") whose artifact is a file of the repository and whose region has a start line;
`partialFingerprints` identify a result across runs (only `primaryLocationLineHash` is
used); rules need `shortDescription`, `fullDescription` (<= 1,024 chars) and `help.text`,
names <= 255 chars, tags <= 20, and `security-severity` a number in (0, 10] as a string.
SARIF 2.1.0 itself (§3.27.10): `level` is "none" whenever `kind` is not "fail".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import catalogue
from pipeline.descriptors.anchors import image_sources
from pipeline.descriptors.load import load_plan
from pipeline.models.compliance import (
    RAN_CLAIR,
    RAN_DOCKLE,
    GateReport,
    ImageScan,
    ScannerRun,
    Waiver,
    ran_by,
    ran_native,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.report import render
from pipeline.report.sarif import MAX_RESULTS, to_sarif

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests/schemas/sarif/sarif-schema-2.1.0.json").read_text())
CONTROLS = load_controls(ROOT / "scan-config" / "controls.yaml")
POLICY = load_policy(ROOT / "scan-config" / "policy.yaml")
TODAY = dt.date(2026, 12, 2)
EVERYTHING = frozenset(
    {RAN_DOCKLE, RAN_CLAIR, *ran_by(Source.TRIVY), *(ran_native(i) for i in catalogue())}
)
PG15 = "drydock/postgresql:15-minimal-bookworm"
PG17 = "drydock/postgresql:17-minimal-trixie"
FOREIGN = "registry.example/other/app:1"


def vuln(
    cve: str, package: str, source: Source = Source.TRIVY, severity: Severity = Severity.HIGH
) -> Finding:
    return Finding(
        cve,
        source,
        Kind.VULNERABILITY,
        severity,
        f"{cve} in {package}",
        package=package,
        installed_version="1.0-1",
        fixed_version="1.0-2",
        status=Status.FIXED,
        evidence=(f"https://security-tracker.debian.org/tracker/{cve}",),
    )


def native(check_id: str) -> Finding:
    spec = catalogue()[check_id]
    return Finding(
        check_id, Source.NATIVE, Kind.CHECKPOINT, spec.severity, spec.title, evidence=("/x",)
    )


def report(*scans: ImageScan, waivers: tuple[Waiver, ...] = ()) -> GateReport:
    judged = evaluate(list(scans), CONTROLS, POLICY, waivers, TODAY)
    plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
    images = {PG15: "postgresql-15-minimal-bookworm", PG17: "postgresql-17-minimal-trixie"}
    sources = image_sources(ROOT, plan, ROOT / "dockerfiles", images)
    return dataclasses.replace(judged, sources=sources)


def sample() -> GateReport:
    blind = "debian/updater data is 3.0 days old (the policy allows 36.0 h)"
    return report(
        ImageScan(
            PG15,
            (
                vuln("CVE-2026-0001", "libssl3"),
                vuln("CVE-2026-0001", "libssl3", Source.CLAIR, Severity.CRITICAL),
                vuln("CVE-2026-0002", "postgresql-15"),
                vuln("CVE-2026-0003", "libc6", severity=Severity.LOW),  # below the threshold
                vuln("CVE-2026-0004", "zlib1g"),  # waived below
                native("DD-ROOT-USER"),
                # Dockle's content-trust hint reads the scanning host: no control counts it.
                Finding("CIS-DI-0005", Source.DOCKLE, Kind.CHECKPOINT, Severity.LOW, "trust"),
            ),
            EVERYTHING,
        ),
        ImageScan(
            PG17,
            ran=EVERYTHING - {RAN_CLAIR},
            runs=(ScannerRun(Source.CLAIR, blind=blind),),
            blind=((RAN_CLAIR, blind),),
        ),
        ImageScan(FOREIGN, (vuln("CVE-2026-0005", "curl"),), EVERYTHING),
        waivers=(Waiver("fix ships next week", "security-team", TODAY, "CVE-2026-0004"),),
    )


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(render(sample(), "sarif"))
    return loaded


def results(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc["runs"][0]["results"])


def of(doc: dict[str, Any], rule: str, image: str) -> list[dict[str, Any]]:
    return [r for r in results(doc) if r["ruleId"] == rule and r["properties"]["image"] == image]


def line_at(location: dict[str, Any]) -> str:
    physical = location["physicalLocation"]
    text = (ROOT / physical["artifactLocation"]["uri"]).read_text().splitlines()
    return str(text[physical["region"]["startLine"] - 1])


def test_valid_against_the_sarif_schema_and_within_githubs_limits(doc: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(SCHEMA).validate(doc)
    assert doc["version"] == "2.1.0" and doc["$schema"]
    assert 1 <= len(doc["runs"]) <= 20
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "drydock"
    assert len(run["results"]) <= 25_000 and len(run["tool"]["driver"]["rules"]) <= 25_000


def test_level_is_none_whenever_kind_is_not_fail(doc: dict[str, Any]) -> None:
    kinds = set()
    for result in results(doc):
        kinds.add(result["kind"])
        if result["kind"] == "fail":
            assert result["level"] in {"error", "warning", "note"}
        else:
            assert result["level"] == "none", result
    assert kinds == {"fail", "open"}  # both occur in the sample


def test_every_result_sits_on_a_line_of_a_file_in_the_repository(doc: dict[str, Any]) -> None:
    for result in results(doc):
        (location,) = result["locations"]
        uri = location["physicalLocation"]["artifactLocation"]["uri"]
        assert ":" not in uri and not uri.startswith("/") and (ROOT / uri).is_file()
        region = location["physicalLocation"]["region"]
        assert 1 <= region["startLine"] == region["endLine"]
        assert region["startColumn"] == 1 < region["endColumn"]
        assert line_at(location).strip()


def test_results_sit_where_a_maintainer_fixes_them(doc: dict[str, Any]) -> None:
    (user,) = of(doc, "CIS-4.1", PG15)
    assert user["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "dockerfiles/postgresql.Dockerfile.j2"
    )
    assert line_at(user["locations"][0]).startswith("USER ")
    (server,) = of(doc, "CVE-2026-0002", PG15)  # a package the descriptor names
    assert "postgresql-{major}" in line_at(server["locations"][0])
    (libssl,) = of(doc, "CVE-2026-0001", PG15)  # from the base: the major's entry
    assert "major: 15" in line_at(libssl["locations"][0])
    (foreign,) = of(doc, "CVE-2026-0005", FOREIGN)  # not built here: the policy decides
    assert foreign["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "scan-config/policy.yaml"
    )


def test_only_what_fails_is_waived_or_unverified_becomes_a_result(doc: dict[str, Any]) -> None:
    assert not of(doc, "CVE-2026-0003", PG15)  # LOW: below the blocking severity
    assert not of(doc, "CIS-DI-0005", PG15)  # counts against no control
    assert not of(doc, "CIS-4.6", PG15)  # passes
    statuses = {r["properties"].get("status") for r in results(doc)} - {None}
    assert statuses <= {"fail", "error", "unverified", "waived"}
    (waived,) = of(doc, "CVE-2026-0004", PG15)
    assert waived["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": waived["suppressions"][0]["justification"],
        }
    ]
    assert "security-team" in waived["suppressions"][0]["justification"]
    (open_,) = of(doc, "CIS-4.4", PG17)
    assert (open_["kind"], open_["level"]) == ("open", "none")
    assert "UNVERIFIED" in open_["message"]["text"]


def test_two_scanners_one_result(doc: dict[str, Any]) -> None:
    (merged,) = of(doc, "CVE-2026-0001", PG15)
    assert merged["properties"]["seenBy"] == ["clair", "trivy"]
    assert merged["properties"]["severity"] == "CRITICAL"


def test_fingerprints_follow_the_image_line_rule_and_package_not_the_tag() -> None:
    def fingerprint(
        image: str, target: str, cve: str = "CVE-2026-0001", pkg: str = "libssl3"
    ) -> str:
        scan = ImageScan(image, (vuln(cve, pkg),), EVERYTHING)
        judged = evaluate([scan], CONTROLS, POLICY, (), TODAY)
        plan = load_plan(ROOT / "images", ROOT / "dockerfiles")
        sources = image_sources(ROOT, plan, ROOT / "dockerfiles", {image: target})
        sarif = to_sarif(dataclasses.replace(judged, sources=sources))
        (result,) = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == cve]
        return str(result["partialFingerprints"]["primaryLocationLineHash"])

    first = fingerprint(PG15, "postgresql-15-minimal-bookworm")
    rebuilt = fingerprint(
        "127.0.0.1:5000/drydock/postgresql:15.20-202612021200-minimal-bookworm@sha256:" + "a" * 64,
        "postgresql-15-minimal-bookworm",
    )
    assert first == rebuilt  # a new tag and digest keep the alert
    assert first != fingerprint(PG17, "postgresql-17-minimal-trixie")
    assert first != fingerprint(PG15, "postgresql-15-minimal-bookworm", pkg="libssl-dev")
    assert first != fingerprint(PG15, "postgresql-15-minimal-bookworm", cve="CVE-2026-0009")


def test_rules_have_help_and_security_severity(doc: dict[str, Any]) -> None:
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} == {r["ruleId"] for r in results(doc)}
    for rule in rules:
        assert rule["help"]["text"].strip() and rule["help"]["markdown"].strip()
        for key in ("shortDescription", "fullDescription"):
            assert 0 < len(rule[key]["text"]) <= 1024
        assert len(rule["name"]) <= 255
        assert "security" in rule["properties"]["tags"] and len(rule["properties"]["tags"]) <= 20
        assert 0.0 < float(rule["properties"]["security-severity"]) <= 10.0
    by_id = {r["id"]: r for r in rules}
    assert float(by_id["CVE-2026-0001"]["properties"]["security-severity"]) >= 9.0  # critical
    assert float(by_id["CIS-4.1"]["properties"]["security-severity"]) >= 7.0  # mandatory
    for result in results(doc):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_results_are_capped_highest_severity_first_and_the_cap_is_reported() -> None:
    many = [vuln(f"CVE-2026-{n:05d}", f"pkg{n}", severity=Severity.HIGH) for n in range(5200)]
    many += [vuln(f"CVE-2027-{n:05d}", f"crit{n}", severity=Severity.CRITICAL) for n in range(40)]
    doc = to_sarif(report(ImageScan(PG15, tuple(many), EVERYTHING)))
    run = doc["runs"][0]
    assert len(run["results"]) == MAX_RESULTS == 5000
    found = run["properties"]["resultsFound"]
    assert found > MAX_RESULTS and run["properties"]["resultsDropped"] == found - MAX_RESULTS
    kept = {r["ruleId"] for r in run["results"]}
    assert {f"CVE-2027-{n:05d}" for n in range(40)} <= kept  # every critical survives
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert any("left out" in n["message"]["text"] for n in notes)
    small = to_sarif(report(ImageScan(PG15, tuple(many[:3]), EVERYTHING)), max_results=2)
    assert len(small["runs"][0]["results"]) == 2
