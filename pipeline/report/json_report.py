"""The JSON report: the machine contract other tools (and later runs) read.

Top level `verdict` is "pass" or "fail" and `provenance` (each scanner and its version,
the vulnerability DB's source, build time, age and advisory count per platform); per
image, what Trivy saw of its OS, `controls` (id, status, evidence) and `findings` (id,
source, severity, controls, waived, ...) plus scanner errors, so a reader can see why an
image was or was not published without re-running anything.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pipeline.models.compliance import (
    AssessedFinding,
    ControlResult,
    GateReport,
    ImageVerdict,
    Policy,
)
from pipeline.report import provenance
from pipeline.report.base import Renderer

SCHEMA = "drydock.gate/v1"


def _control(result: ControlResult) -> dict[str, Any]:
    return {
        "id": result.control.id,
        "title": result.control.title,
        "status": result.status.value,
        "mandatory": result.control.mandatory,
        "automated": result.control.automated,
        "blocking": result.blocking,
        "evidence": list(result.evidence),
        "findings": list(result.findings),
        "waivers": list(result.waivers),
    }


def _finding(af: AssessedFinding) -> dict[str, Any]:
    f = af.finding
    return {
        "id": f.id,
        "source": f.source.value,
        "kind": f.kind.value,
        "severity": f.severity.value,
        "title": f.title,
        "package": f.package,
        "installed_version": f.installed_version,
        "fixed_version": f.fixed_version,
        "status": f.status.value,
        "fixable": f.fixable,
        "target": f.target,
        "evidence": list(f.evidence),
        "controls": list(af.controls),
        "blocking": af.blocking,
        "waived": af.waived,
        "waived_by": af.waived_by,
    }


def _image(verdict: ImageVerdict) -> dict[str, Any]:
    return {
        "image": verdict.image,
        "digest": verdict.digest,
        "status": verdict.status.value,
        "os": (
            {
                "family": verdict.os.family,
                "version": verdict.os.version,
                "platform": verdict.os.platform,
                "packages": verdict.os.packages,
                "end_of_support": verdict.os.eosl,
            }
            if verdict.os is not None
            else None
        ),
        "reasons": list(verdict.reasons),
        "controls": [_control(r) for r in verdict.controls],
        "findings": [_finding(af) for af in verdict.findings],
        "scanner_errors": [
            {"source": e.source.value, "message": e.message} for e in verdict.errors
        ],
        "waived": list(verdict.waived),
        "expired_waivers": list(verdict.expired_waivers),
    }


def _policy(policy: Policy) -> dict[str, Any]:
    return {
        "vulnerability_severity": policy.vulnerability_severity.value,
        "ignore_unfixed": policy.ignore_unfixed,
        "dockle_severity": policy.dockle_severity.value,
        "block_on_mandatory_controls": policy.block_on_mandatory_controls,
        "vulnerability_db_source": policy.vuln_db_source,
        "max_db_age_hours": round(policy.max_db_age.total_seconds() / 3600, 2),
    }


def to_document(report: GateReport) -> dict[str, Any]:
    """The report as plain JSON-able data."""
    return {
        "schema": SCHEMA,
        "verdict": report.verdict,
        "date": report.today.isoformat(),
        "policy": _policy(report.policy),
        "provenance": provenance.document(report),
        "expired_waivers": list(report.expired_waivers),
        "unused_waivers": list(report.unused_waivers),
        "images": [_image(v) for v in report.images],
    }


class JsonRenderer(Renderer):
    name: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"
    extension: ClassVar[str] = "json"

    def render(self, report: GateReport) -> str:
        return json.dumps(to_document(report), indent=2, sort_keys=False) + "\n"
