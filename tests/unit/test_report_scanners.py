"""Every report format shows, per image, each vulnerability scanner's data, whether it could
see, and the Trivy/Clair cross-check with its disagreements."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from xml.etree import ElementTree as ET

from pipeline.compliance.config import load_controls, load_policy
from pipeline.compliance.gate import evaluate
from pipeline.compliance.native import catalogue
from pipeline.models.compliance import (
    RAN_CLAIR,
    RAN_DOCKLE,
    GateReport,
    ImageScan,
    ScannerRun,
    ran_by,
    ran_native,
)
from pipeline.models.findings import Finding, Kind, Severity, Source, Status
from pipeline.report import render

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = frozenset(
    {RAN_DOCKLE, RAN_CLAIR, *ran_by(Source.TRIVY), *(ran_native(i) for i in catalogue())}
)
CLAIR_DATA = "debian/updater for Debian GNU/Linux 12 (bookworm), data from 2026-12-02T06:00+00:00"
BLIND = "debian/updater data is 3.0 days old (the policy allows 36.0 h)"


def vuln(cve: str, source: Source) -> Finding:
    return Finding(
        cve, source, Kind.VULNERABILITY, Severity.HIGH, cve, "libssl3", "1-1", "1-2", Status.FIXED
    )


def sample() -> GateReport:
    seen = ImageScan(
        "drydock/postgresql:15-minimal-bookworm",
        (
            vuln("CVE-2026-1", Source.TRIVY),
            vuln("CVE-2026-1", Source.CLAIR),
            vuln("CVE-2026-2", Source.TRIVY),
        ),
        EVERYTHING,
        runs=(ScannerRun(Source.TRIVY, 2), ScannerRun(Source.CLAIR, 1, 0.8, CLAIR_DATA)),
    )
    blind = ImageScan(
        "drydock/postgresql:17-minimal-trixie",
        ran=EVERYTHING - {RAN_CLAIR},
        runs=(ScannerRun(Source.TRIVY, 0), ScannerRun(Source.CLAIR, 0, 0.5, "", BLIND)),
        blind=((RAN_CLAIR, BLIND),),
    )
    controls = load_controls(ROOT / "scan-config" / "controls.yaml")
    policy = load_policy(ROOT / "scan-config" / "policy.yaml")
    return evaluate([seen, blind], controls, policy, (), dt.date(2026, 12, 2))


def test_json_names_each_scanner_and_the_disagreements() -> None:
    first, second = json.loads(render(sample(), "json"))["images"]
    assert [s["source"] for s in first["scanners"]] == ["trivy", "clair"]
    assert first["scanners"][1]["database"] == CLAIR_DATA
    check = first["crosscheck"]
    assert check["scanners"] == ["trivy", "clair"] and check["compared"] is True
    assert [(d["id"], d["seen_by"]) for d in check["disagreements"]] == [("CVE-2026-2", ["trivy"])]
    assert second["scanners"][1]["blind"] == BLIND
    assert second["crosscheck"]["blind"] == ["clair"]


def test_markdown_html_and_junit_show_both_scanners() -> None:
    report = sample()
    markdown = render(report, "markdown")
    assert "| clair | 1 | " + CLAIR_DATA in markdown
    assert "only trivy: 1 (CVE-2026-2)" in markdown
    assert f"BLIND: {BLIND}" in markdown
    html = render(report, "html")
    assert 'data-scanner="clair"' in html and "CVE-2026-2 in libssl3" in html
    junit = ET.fromstring(render(report, "junit"))  # noqa: S314 - our own output
    gate = next(c for c in junit.iter("testcase") if c.get("name") == "gate")
    out = gate.findtext("system-out") or ""
    assert "clair: 1 findings; " + CLAIR_DATA in out and "trivy and clair" in out
