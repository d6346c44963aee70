"""SARIF rules (reportingDescriptor objects) for code scanning: help, tags, severity.

GitHub code scanning shows a rule's `shortDescription`, `fullDescription` and `help`
(markdown when present) next to each alert, filters on `properties.tags`, and treats a
rule with `properties.security-severity` (a string, 0.1-10.0; 9.0+ critical, 7.0-8.9
high, 4.0-6.9 medium, below low) as a security rule. Its documented limits: descriptions
up to 1,024 characters, names up to 255, at most 20 tags per rule (10 shown). Rules are
the controls and the finding ids (CVE ids, Dockle codes, native checks) that results
use; nothing here depends on an image, so a rule is the same across images and runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.models.compliance import Control
from pipeline.models.findings import Finding, Kind, Severity

MAX_DESCRIPTION = 1024
MAX_NAME = 255

# Severity -> security-severity score (the middle of GitHub's bands).
SECURITY_SEVERITY: Mapping[Severity, str] = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
    Severity.INFO: "0.5",
    Severity.UNKNOWN: "0.5",
}

# A mandatory control blocks publication: a high alert; an advisory one is medium.
CONTROL_SEVERITY = {True: Severity.HIGH, False: Severity.MEDIUM}


def _clip(text: str, limit: int = MAX_DESCRIPTION) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(rule_id: str) -> str:
    return _clip("".join(p.capitalize() for p in rule_id.replace(".", "-").split("-")), MAX_NAME)


def control_rule(control: Control) -> dict[str, Any]:
    """A benchmark control as a rule."""
    sources = [
        *(f"Dockle {c}" for c in control.evidence.dockle),
        *(
            f"Trivy {t.cls.value}{' ' + ', '.join(t.ids) if t.ids else ''}"
            for t in control.evidence.trivy
        ),
        *(f"Clair {c.value}" for c in control.evidence.clair),
        *(f"Drydock check {c}" for c in control.evidence.native),
    ]
    about = control.note or control.reason or control.title
    if control.partial:
        about = f"PARTIAL: {control.partial} {about}"
    blocks = "blocks publication" if control.mandatory else "is advisory (does not block)"
    markdown = "\n".join(
        [
            f"**{control.id}: {control.title}**",
            "",
            about,
            "",
            f"This control {blocks} when it fails, errs or cannot be verified.",
            "",
            "Evidence Drydock reads: " + (", ".join(sources) if sources else "none (manual)"),
            "",
            "Fix the image's descriptor (`images/`) or template (`dockerfiles/`) at the line "
            "shown, or record an accepted risk in `scan-config/waivers.yaml` (justification, "
            "approver, expiry).",
        ]
    )
    family = control.id.split("-", 1)[0]
    return {
        "id": control.id,
        "name": _name(control.id),
        "shortDescription": {"text": _clip(f"{control.id}: {control.title}")},
        "fullDescription": {"text": _clip(about)},
        "help": {"text": _clip(f"{control.title}. {about}", 4000), "markdown": markdown},
        "defaultConfiguration": {"level": "error" if control.mandatory else "warning"},
        "properties": {
            "tags": ["security", "compliance", family, "container"],
            "precision": "high",
            "security-severity": SECURITY_SEVERITY[CONTROL_SEVERITY[control.mandatory]],
        },
    }


def finding_rule(finding: Finding, severity: Severity) -> dict[str, Any]:
    """A finding id (CVE, Dockle checkpoint, Drydock check, Trivy check) as a rule."""
    title = finding.title or finding.id
    if finding.kind is Kind.VULNERABILITY:
        about = (
            f"{finding.id}: a known vulnerability in an installed package. "
            "Rebuild the image so that it installs the fixed version "
            "(`drydock run --rebuild TARGET`), or waive it in `scan-config/waivers.yaml`."
        )
        tags = ["security", "vulnerability", "container"]
    else:
        about = f"{finding.id}: {title} (reported by {finding.source.value})."
        tags = ["security", finding.kind.value, finding.source.value, "container"]
    links = [e for e in finding.evidence if e.startswith("https://")][:5]
    markdown = "\n".join(
        [f"**{finding.id}**: {title}", "", about, *(["", *(f"- <{u}>" for u in links)])]
    )
    rule: dict[str, Any] = {
        "id": finding.id,
        "name": _name(finding.id),
        "shortDescription": {"text": _clip(f"{finding.id}: {title}")},
        "fullDescription": {"text": _clip(about)},
        "help": {"text": _clip(about, 4000), "markdown": markdown},
        "properties": {
            "tags": tags,
            "precision": "high",
            "security-severity": SECURITY_SEVERITY[severity],
        },
    }
    if links:
        rule["helpUri"] = links[0]
    return rule
