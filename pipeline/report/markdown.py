"""Markdown for a CI job summary: the verdict first, then why, then the full checklist.

Short enough to read in a job page: one summary table, and per image the blocking reasons,
waivers, expired waivers and a collapsed control table.
"""

from __future__ import annotations

from typing import ClassVar

from pipeline.models.compliance import ControlResult, GateReport, ImageVerdict
from pipeline.report import provenance
from pipeline.report.base import Renderer, counts_text

ICON = {
    "pass": "✅",
    "fail": "❌",
    "error": "⛔",
    "waived": "🟡",
    "manual": "📝",
    "unverified": "❔",
}
MAX_EVIDENCE = 3


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _evidence(result: ControlResult) -> str:
    items = [cell(e) for e in result.evidence[:MAX_EVIDENCE]]
    if len(result.evidence) > MAX_EVIDENCE:
        items.append(f"… {len(result.evidence) - MAX_EVIDENCE} more")
    items += [f"waived: {cell(w)}" for w in result.waivers]
    return "<br>".join(items)


def _image(verdict: ImageVerdict) -> list[str]:
    lines = [f"### {ICON[verdict.status.value]} `{verdict.image}` — {verdict.status.value}", ""]
    if verdict.digest:
        lines += [f"Scanned: `{verdict.digest}`", ""]
    lines += [cell(provenance.os_text(verdict)), ""]
    if verdict.reasons:
        lines += ["**Why it does not pass**", ""]
        lines += [f"- {cell(r)}" for r in verdict.reasons]
        lines.append("")
    if verdict.waived:
        lines += ["**Waived**", ""] + [f"- {cell(w)}" for w in verdict.waived] + [""]
    if verdict.expired_waivers:
        lines += ["**Expired waivers (no longer applied)**", ""]
        lines += [f"- {cell(w)}" for w in verdict.expired_waivers] + [""]
    open_attr = " open" if verdict.status.value != "pass" else ""
    lines += [
        f"<details{open_attr}><summary>Controls: {counts_text(verdict)}</summary>",
        "",
        "| Control | Title | Mandatory | Status | Evidence |",
        "|---|---|---|---|---|",
    ]
    for r in verdict.controls:
        status = f"{ICON[r.status.value]} {r.status.value}"
        mandatory = "yes" if r.control.mandatory else "no"
        title = cell(r.control.title)
        lines.append(f"| {r.control.id} | {title} | {mandatory} | {status} | {_evidence(r)} |")
    lines += ["", "</details>", ""]
    blocking = [af for af in verdict.findings if af.blocking or af.controls]
    if blocking:
        lines += [
            f"<details><summary>Findings mapped to controls or blocking: {len(blocking)}</summary>",
            "",
            "| Finding | Source | Severity | Package | Controls | Waived |",
            "|---|---|---|---|---|---|",
        ]
        for af in blocking:
            f = af.finding
            pkg = f"{f.package} {f.installed_version}".strip()
            lines.append(
                f"| {cell(f.id)} | {f.source.value} | {f.severity.value} | {cell(pkg)} "
                f"| {', '.join(af.controls)} | {'yes' if af.waived else 'no'} |"
            )
        lines += ["", "</details>", ""]
    return lines


class MarkdownRenderer(Renderer):
    name: ClassVar[str] = "markdown"
    media_type: ClassVar[str] = "text/markdown"
    extension: ClassVar[str] = "md"

    def render(self, report: GateReport) -> str:
        policy = report.policy
        fixable = " (fixable only)" if policy.ignore_unfixed else ""
        lines = [
            f"## {ICON[report.verdict]} Drydock compliance gate: {report.verdict.upper()}",
            "",
            f"Date {report.today.isoformat()}; blocking at {policy.vulnerability_severity.value}"
            f" vulnerabilities{fixable}, Dockle WARN/FATAL and failing mandatory controls.",
            "",
            *(f"{line}  " for line in provenance.lines(report)),
            "",
            "| Image | Verdict | Controls | Blocking reasons |",
            "|---|---|---|---|",
        ]
        for v in report.images:
            lines.append(
                f"| `{v.image}` | {ICON[v.status.value]} {v.status.value} | {counts_text(v)} "
                f"| {len(v.reasons)} |"
            )
        if not report.images:
            lines.append("| (no image) | ❌ fail | | no image was scanned |")
        lines.append("")
        if report.expired_waivers:
            lines += ["**Expired waivers in waivers.yaml**", ""]
            lines += [f"- {cell(w)}" for w in report.expired_waivers] + [""]
        if report.unused_waivers:
            lines += ["**Waivers that matched nothing (remove them?)**", ""]
            lines += [f"- {cell(w)}" for w in report.unused_waivers] + [""]
        for v in report.images:
            lines += _image(v)
        return "\n".join(lines).rstrip() + "\n"
