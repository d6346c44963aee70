"""SARIF 2.1.0: the gate's results for code-scanning dashboards.

One run, tool "drydock". Rules are the controls plus every distinct finding id. Results:
one per control per image (kind pass/fail/review, so the run is a full checklist) and one
per finding per image; waived findings and controls carry an accepted suppression; scanner
errors are tool execution notifications and make the invocation unsuccessful.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import quote

import pipeline
from pipeline.models.compliance import (
    AssessedFinding,
    ControlResult,
    ControlStatus,
    GateReport,
    ImageVerdict,
)
from pipeline.report import provenance
from pipeline.report.base import Renderer

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

_KIND = {
    ControlStatus.PASS: "pass",
    ControlStatus.FAIL: "fail",
    ControlStatus.WAIVED: "fail",
    ControlStatus.ERROR: "fail",
    ControlStatus.UNVERIFIED: "open",
    ControlStatus.MANUAL: "review",
}


def _location(image: str) -> list[dict[str, Any]]:
    return [
        {
            "physicalLocation": {"artifactLocation": {"uri": quote(image, safe="/")}},
            "logicalLocations": [{"name": image, "kind": "module"}],
        }
    ]


def _control_level(result: ControlResult) -> str:
    if result.status in {ControlStatus.FAIL, ControlStatus.ERROR, ControlStatus.UNVERIFIED}:
        return "error" if result.control.mandatory else "warning"
    if result.status == ControlStatus.WAIVED:
        return "warning"
    return "none"


def _suppressed(justification: str) -> list[dict[str, Any]]:
    return [{"kind": "external", "status": "accepted", "justification": justification}]


def _control_result(verdict: ImageVerdict, r: ControlResult, index: int) -> dict[str, Any]:
    evidence = "; ".join(r.evidence) or "no evidence recorded"
    result: dict[str, Any] = {
        "ruleId": r.control.id,
        "ruleIndex": index,
        "kind": _KIND[r.status],
        "level": _control_level(r),
        "message": {"text": f"{r.control.id} {r.status.value} on {verdict.image}: {evidence}"},
        "locations": _location(verdict.image),
        "properties": {"status": r.status.value, "mandatory": r.control.mandatory},
    }
    if r.status == ControlStatus.WAIVED:
        result["suppressions"] = _suppressed("; ".join(r.waivers))
    return result


def _finding_level(af: AssessedFinding, failing: set[str]) -> str:
    if af.blocking or failing & set(af.controls):
        return "error"
    if af.controls:
        return "warning"
    return "note"


def _finding_result(
    verdict: ImageVerdict, af: AssessedFinding, index: int, failing: set[str]
) -> dict[str, Any]:
    f = af.finding
    text = f"{f.id} ({f.source.value}, {f.severity.value}) on {verdict.image}: {f.title or f.id}"
    if f.package:
        text += f" [{f.package} {f.installed_version} -> {f.fixed_version or 'no fix'}]"
    if f.evidence:
        text += ": " + "; ".join(f.evidence[:10])
    result: dict[str, Any] = {
        "ruleId": f.id,
        "ruleIndex": index,
        "kind": "fail",
        "level": _finding_level(af, failing),
        "message": {"text": text},
        "locations": _location(verdict.image),
        "properties": {
            "source": f.source.value,
            "severity": f.severity.value,
            "controls": list(af.controls),
            "blocking": af.blocking,
        },
    }
    if af.waived:
        result["suppressions"] = _suppressed(af.waived_by)
    return result


def _rules(report: GateReport) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for verdict in report.images:
        for r in verdict.controls:
            if r.control.id not in index:
                index[r.control.id] = len(rules)
                rules.append(
                    {
                        "id": r.control.id,
                        "name": r.control.id.replace("-", "").replace(".", "_"),
                        "shortDescription": {"text": r.control.title},
                        "fullDescription": {
                            "text": r.control.note or r.control.reason or r.control.title
                        },
                        "properties": {
                            "mandatory": r.control.mandatory,
                            "automated": r.control.automated,
                            "tags": ["compliance", r.control.id.split("-", 1)[0]],
                        },
                    }
                )
        for af in verdict.findings:
            f = af.finding
            if f.id not in index:
                index[f.id] = len(rules)
                rules.append(
                    {
                        "id": f.id,
                        "shortDescription": {"text": f.title or f.id},
                        "properties": {"tags": [f.source.value, f.kind.value]},
                    }
                )
    return rules, index


def to_sarif(report: GateReport) -> dict[str, Any]:
    rules, index = _rules(report)
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for verdict in report.images:
        failing = {r.control.id for r in verdict.controls if r.blocking}
        results += [_control_result(verdict, r, index[r.control.id]) for r in verdict.controls]
        results += [
            _finding_result(verdict, af, index[af.finding.id], failing) for af in verdict.findings
        ]
        notifications += [
            {
                "level": "error",
                "message": {"text": f"{verdict.image}: {e.source.value} failed: {e.message}"},
            }
            for e in verdict.errors
        ]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "drydock",
                        "version": pipeline.__version__,
                        "rules": rules,
                    },
                    # The scanners whose evidence the results rest on, with their versions.
                    "extensions": [
                        {"name": t.name, "version": t.version}
                        for t in (report.provenance.scanners if report.provenance else ())
                    ],
                },
                "invocations": [
                    {
                        "executionSuccessful": not notifications,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
                "properties": {
                    "verdict": report.verdict,
                    "date": report.today.isoformat(),
                    "provenance": provenance.document(report),
                },
            }
        ],
    }


class SarifRenderer(Renderer):
    name: ClassVar[str] = "sarif"
    media_type: ClassVar[str] = "application/sarif+json"
    extension: ClassVar[str] = "sarif"

    def render(self, report: GateReport) -> str:
        return json.dumps(to_sarif(report), indent=2) + "\n"
