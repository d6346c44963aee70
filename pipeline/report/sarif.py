"""SARIF 2.1.0 for GitHub code scanning: what blocks, anchored where a maintainer fixes it.

Code scanning turns each result into an alert on a file and a line, matches alerts across
runs by `partialFingerprints`, shows the top 5,000 results of a run (prioritised by
severity; it refuses more than 25,000), and reads a rule's `help` and
`security-severity`. So this renderer emits only what a maintainer must act on:

* controls that fail (kind `fail`, level `error` when mandatory, else `warning`), that
  could not be verified or whose scanner failed (kind `open`, level `none`: SARIF 2.1.0
  §3.27.10 requires `none` whenever kind is not `fail`), and waived ones (kind `fail`
  with an accepted `suppressions` entry, which code scanning shows as dismissed);
* findings that count against a control (vulnerabilities at or above the blocking
  severity, merged across Trivy and Clair with `seenBy`), waived ones suppressed.

Each result sits at the descriptor entry in `images/`, the line naming the package, or
the template instruction in `dockerfiles/` the control is about, with a full region.
Its fingerprint hashes the image's identity (release repository and plan target), the
rule and the package: never a tag or a digest, so a rebuild keeps the same alert.
Results are capped at `MAX_RESULTS`, highest security severity first; the cap, the total
and what was left out are in the run's properties and a notification.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pipeline
from pipeline.compliance.mapping import counts_against
from pipeline.models.compliance import (
    AssessedFinding,
    ControlResult,
    ControlStatus,
    GateReport,
    ImageVerdict,
)
from pipeline.models.findings import Kind, Severity
from pipeline.models.sources import ImageSource, SourceLine
from pipeline.report import provenance
from pipeline.report.base import Renderer
from pipeline.report.sarif_rules import (
    CONTROL_SEVERITY,
    SECURITY_SEVERITY,
    control_rule,
    finding_rule,
)

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RESULTS = 5000  # code scanning displays the top 5,000 results of a run
# Images Drydock did not build have no descriptor: their results sit on the policy, the
# file that decides what blocks them.
FALLBACK = SourceLine("scan-config/policy.yaml", 1, "# What blocks a publish")
# The template instruction each control is about; others sit on the descriptor entry.
CONTROL_INSTRUCTIONS = {
    "CIS-4.1": "USER",
    "DISA-2.2": "USER",
    "CIS-4.2": "FROM",
    "DISA-2.10": "FROM",
    "DISA-2.14": "FROM",
    "DISA-2.17": "FROM",
    "CIS-4.6": "HEALTHCHECK",
    "DISA-2.6": "HEALTHCHECK",
    "DISA-2.5": "EXPOSE",
    "DISA-2.13": "EXPOSE",
    "CIS-4.9": "COPY",
    "DISA-2.4": "COPY",
    "CIS-4.7": "RUN",
    "DISA-2.8": "RUN",
    "CIS-4.8": "RUN",
    "DISA-2.3": "RUN",
    "CIS-4.11": "RUN",
    "DISA-2.11": "RUN",
    "DISA-2.1": "RUN",
    "CIS-4.10": "ENV",
    "DISA-2.9": "ENV",
    "DISA-2.18": "ENV",
}
_OPEN = {ControlStatus.UNVERIFIED, ControlStatus.ERROR}


@dataclass(frozen=True)
class _Candidate:
    result: dict[str, Any]
    rule: dict[str, Any]
    score: float  # security-severity
    rank: int  # 0 fail, 1 open, 2 suppressed


def _region(line: SourceLine) -> dict[str, int]:
    return {
        "startLine": line.line,
        "startColumn": 1,
        "endLine": line.line,
        "endColumn": max(2, len(line.text) + 1),
    }


def _locations(line: SourceLine, image: str) -> list[dict[str, Any]]:
    return [
        {
            "physicalLocation": {"artifactLocation": {"uri": line.path}, "region": _region(line)},
            "logicalLocations": [{"name": image, "kind": "module"}],
        }
    ]


def _identity(verdict: ImageVerdict, source: ImageSource | None) -> str:
    if source is not None:
        return f"{source.repository}|{source.target}"
    name = verdict.image.split("@", 1)[0]
    head, _, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _fingerprints(identity: str, rule_id: str, package: str) -> dict[str, str]:
    digest = hashlib.sha256(f"{identity}|{rule_id}|{package}".encode()).hexdigest()
    return {"primaryLocationLineHash": f"{digest[:16]}:1", "drydockFinding/v1": digest}


def _control_anchor(source: ImageSource | None, control_id: str) -> SourceLine:
    if source is None:
        return FALLBACK
    keyword = CONTROL_INSTRUCTIONS.get(control_id, "")
    return (source.instruction_line(keyword) if keyword else None) or source.descriptor


def _suppressed(justification: str) -> list[dict[str, Any]]:
    return [{"kind": "external", "status": "accepted", "justification": justification}]


def _control(verdict: ImageVerdict, r: ControlResult, src: ImageSource | None) -> _Candidate:
    evidence = "; ".join(r.evidence[:8]) or "no evidence recorded"
    status = r.status.value.upper()
    blocks = " (blocks publication)" if r.blocking else ""
    result: dict[str, Any] = {
        "ruleId": r.control.id,
        "kind": "open" if r.status in _OPEN else "fail",
        "level": "none" if r.status in _OPEN else ("error" if r.control.mandatory else "warning"),
        "message": {
            "text": f"{r.control.id} {status} on {verdict.image}{blocks}. {evidence}"[:4000]
        },
        "locations": _locations(_control_anchor(src, r.control.id), verdict.image),
        "partialFingerprints": _fingerprints(_identity(verdict, src), r.control.id, ""),
        "properties": {"status": r.status.value, "image": verdict.image},
    }
    rank = 1 if r.status in _OPEN else 0
    if r.status == ControlStatus.WAIVED:
        result["suppressions"] = _suppressed("; ".join(r.waivers))
        rank = 2
    score = float(SECURITY_SEVERITY[CONTROL_SEVERITY[r.control.mandatory]])
    return _Candidate(result, control_rule(r.control), score, rank)


def _finding(
    verdict: ImageVerdict, group: Sequence[AssessedFinding], src: ImageSource | None
) -> _Candidate:
    first = group[0].finding
    severity = max((af.finding.severity for af in group), key=lambda s: s.rank)
    seen_by = sorted({af.finding.source.value for af in group})
    unwaived = [af for af in group if not af.waived]
    if first.kind is Kind.VULNERABILITY:
        fixed = next((af.finding.fixed_version for af in group if af.finding.fixed_version), "")
        what = f"{first.package} {first.installed_version}"
        what += f" (fixed in {fixed})" if fixed else " (no fix yet)"
        anchor = (src.package_line(first.package) or src.descriptor) if src else FALLBACK
    else:
        evidence = [e for af in group for e in af.finding.evidence][:5]
        what = first.title + (f": {'; '.join(evidence)}" if evidence else "")
        controls = [c for af in group for c in af.controls]
        anchor = _control_anchor(src, controls[0]) if controls else FALLBACK
        if src is not None and not controls:
            anchor = src.descriptor
    text = f"{first.id} on {verdict.image}: {what}. Seen by {', '.join(seen_by)}."
    result: dict[str, Any] = {
        "ruleId": first.id,
        "kind": "fail",
        "level": "error" if any(af.blocking for af in group) else "warning",
        "message": {"text": text[:4000]},
        "locations": _locations(anchor, verdict.image),
        "partialFingerprints": _fingerprints(_identity(verdict, src), first.id, first.package),
        "properties": {
            "image": verdict.image,
            "severity": severity.value,
            "seenBy": seen_by,
            "controls": sorted({c for af in group for c in af.controls}),
        },
    }
    if not unwaived:
        result["suppressions"] = _suppressed(group[0].waived_by)
    score = float(SECURITY_SEVERITY[severity])
    return _Candidate(result, finding_rule(first, severity), score, 0 if unwaived else 2)


def candidates(report: GateReport) -> list[_Candidate]:
    """Every result worth an alert, before the cap."""
    found: list[_Candidate] = []
    for verdict in report.images:
        src = report.source_of(verdict.image)
        found += [
            _control(verdict, r, src)
            for r in verdict.controls
            if r.status in {ControlStatus.FAIL, ControlStatus.WAIVED, *_OPEN}
        ]
        groups: dict[tuple[str, str, str], list[AssessedFinding]] = {}
        for af in verdict.findings:
            # What fails a control (or blocks by itself); a finding no control counts,
            # such as Dockle's host-side content-trust hint, is not an alert.
            if af.blocking or (af.controls and counts_against(af.finding, report.policy)):
                key = (af.finding.id, af.finding.package, af.finding.installed_version)
                groups.setdefault(key, []).append(af)
        found += [_finding(verdict, group, src) for group in groups.values()]
    return found


def _notifications(report: GateReport, dropped: int, total: int) -> list[dict[str, Any]]:
    notes = [
        {"level": "error", "message": {"text": f"{v.image}: {e.source.value} failed: {e.message}"}}
        for v in report.images
        for e in v.errors
    ]
    notes += [
        {
            "level": "warning",
            "message": {"text": f"{v.image}: {r.source.value} could not see: {r.blind}"},
        }
        for v in report.images
        for r in v.runs
        if r.blind
    ]
    if dropped:
        notes.append(
            {
                "level": "warning",
                "message": {
                    "text": f"{dropped} of {total} results left out: code scanning shows "
                    f"{MAX_RESULTS} per run; the lowest security severities went first"
                },
            }
        )
    return notes


def to_sarif(report: GateReport, max_results: int = MAX_RESULTS) -> dict[str, Any]:
    found = sorted(
        candidates(report),
        key=lambda c: (-c.score, c.rank, c.result["properties"]["image"], c.result["ruleId"]),
    )
    kept = found[: max(0, max_results)]
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for c in kept:
        rule_id = c.result["ruleId"]
        if rule_id not in index:
            index[rule_id] = len(rules)
            rules.append(c.rule)
        elif float(c.rule["properties"]["security-severity"]) > float(
            rules[index[rule_id]]["properties"]["security-severity"]
        ):
            rules[index[rule_id]] = c.rule  # a CVE's rule takes its highest severity
        results.append({**c.result, "ruleIndex": index[rule_id]})
    dropped = len(found) - len(kept)
    errors = any(v.errors for v in report.images)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "drydock",
                        "version": pipeline.__version__,
                        "semanticVersion": pipeline.__version__,
                        "rules": rules,
                    },
                    # The scanners whose evidence the results rest on, with their versions.
                    "extensions": [
                        {"name": t.name, "version": t.version}
                        for t in (report.provenance.scanners if report.provenance else ())
                    ],
                },
                "automationDetails": {"id": f"drydock/{report.today.isoformat()}"},
                "invocations": [
                    {
                        "executionSuccessful": not errors,
                        "toolExecutionNotifications": _notifications(report, dropped, len(found)),
                    }
                ],
                "results": results,
                "properties": {
                    "verdict": report.verdict,
                    "date": report.today.isoformat(),
                    "resultCap": max_results,
                    "resultsFound": len(found),
                    "resultsEmitted": len(kept),
                    "resultsDropped": dropped,
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


__all__ = ["MAX_RESULTS", "SarifRenderer", "Severity", "to_sarif"]
