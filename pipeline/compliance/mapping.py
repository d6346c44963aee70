"""Findings -> CIS/DISA controls, and each control's status for one image.

The control catalogue names, per control, the Dockle codes, Trivy classes (and check ids),
Clair classes and native checks that are its evidence. A finding maps to every control
whose evidence it matches. A control passes only when at least one of its evidence
sources actually ran and nothing that counts against it was found: "no scanner looked" is
`unverified`, "a scanner it needs crashed" is `error`, never `pass`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pipeline.compliance.crosscheck import VULNERABILITY_SCANNERS, ran_key
from pipeline.models.compliance import (
    RAN_CLAIR,
    RAN_DOCKLE,
    AssessedFinding,
    Control,
    ControlResult,
    Controls,
    ControlStatus,
    ImageScan,
    Policy,
    TrivyClass,
    ran_native,
    ran_trivy,
)
from pipeline.models.findings import Finding, Kind, Severity, Source

_CHECK_ID = re.compile(r"^(?:AVD-)?([A-Z]+)-?0*(\d+)$")
MAX_EVIDENCE_PER_FINDING = 5


def normalise_check_id(check_id: str) -> str:
    """'DS002', 'DS-0002' and 'AVD-DS-0002' are all 'DS-2'; other ids are upper-cased."""
    match = _CHECK_ID.match(check_id.strip().upper())
    return f"{match.group(1)}-{int(match.group(2))}" if match else check_id.strip().upper()


def _trivy_class(kind: Kind) -> TrivyClass | None:
    try:
        return TrivyClass(kind.value)
    except ValueError:
        return None


def matches(control: Control, finding: Finding) -> bool:
    """Is this finding evidence for this control?"""
    ev = control.evidence
    if finding.source == Source.DOCKLE:
        return finding.id in ev.dockle
    if finding.source == Source.NATIVE:
        return finding.id in ev.native
    cls = _trivy_class(finding.kind)
    if cls is None:
        return False
    if finding.source == Source.CLAIR:
        return cls in ev.clair
    if finding.source == Source.TRIVY:
        wanted = normalise_check_id(finding.id)
        return any(
            t.cls == cls and (not t.ids or wanted in {normalise_check_id(i) for i in t.ids})
            for t in ev.trivy
        )
    return False


def controls_for(finding: Finding, controls: Controls) -> tuple[str, ...]:
    return tuple(c.id for c in controls.controls if matches(c, finding))


def sources_of(control: Control) -> frozenset[str]:
    """The `ImageScan.ran` keys that can prove this control."""
    ev = control.evidence
    keys = {RAN_DOCKLE} if ev.dockle else set()
    keys |= {ran_trivy(t.cls) for t in ev.trivy}
    keys |= {RAN_CLAIR for _ in ev.clair}
    keys |= {ran_native(i) for i in ev.native}
    return frozenset(keys)


def scanner_of(key: str) -> Source:
    return Source(key.split(":", 1)[0])


def vulnerability_blocks(finding: Finding, policy: Policy) -> bool:
    if finding.severity.rank < policy.vulnerability_severity.rank:
        return False
    return finding.fixable or not policy.ignore_unfixed


def blocks_by_itself(finding: Finding, policy: Policy) -> bool:
    """Does the policy block on this finding whatever control it maps to?"""
    if finding.kind == Kind.VULNERABILITY:
        return vulnerability_blocks(finding, policy)
    if finding.source == Source.DOCKLE:
        return finding.severity.rank >= policy.dockle_severity.rank
    return False


def counts_against(finding: Finding, policy: Policy) -> bool:
    """Does this finding make the controls it maps to fail?

    Vulnerabilities count only when the policy would block on them (an unfixable LOW does
    not fail CIS-4.4). Dockle SKIP (UNKNOWN) and IGNORE (INFO) prove nothing either way.
    Every other finding is a violation of its controls.
    """
    if finding.kind == Kind.VULNERABILITY:
        return vulnerability_blocks(finding, policy)
    if finding.source == Source.DOCKLE:
        return finding.severity.rank >= Severity.LOW.rank
    return True


def describe(finding: Finding) -> str:
    """One line of evidence for a finding."""
    what = f"{finding.id} [{finding.source.value}, {finding.severity.value}]"
    if finding.package:
        fix = f" -> {finding.fixed_version}" if finding.fixed_version else " (no fix)"
        what += f" {finding.package} {finding.installed_version}{fix}"
    items = list(finding.evidence[:MAX_EVIDENCE_PER_FINDING])
    if len(finding.evidence) > MAX_EVIDENCE_PER_FINDING:
        items.append(f"... {len(finding.evidence) - MAX_EVIDENCE_PER_FINDING} more")
    return f"{what}: {'; '.join(items)}" if items else what


def is_vulnerability_control(control: Control) -> bool:
    ev = control.evidence
    return bool(ev.clair) or any(t.cls is TrivyClass.VULNERABILITY for t in ev.trivy)


def vulnerability_gaps(scan: ImageScan, policy: Policy) -> list[str]:
    """Why the image's vulnerability evidence cannot prove it clean ([] when it can):
    a required scanner that did not run, or a scanner that ran but could not see."""
    why = dict(scan.blind)
    blind = {s: why[ran_key(s)] for s in VULNERABILITY_SCANNERS if ran_key(s) in why}
    failed = {e.source for e in scan.errors}
    gaps = [
        f"required scanner {source.value} did not run"
        for source in policy.required_scanners
        if ran_key(source) not in scan.ran and source not in blind and source not in failed
    ]
    gaps += [
        f"{source.value} could not see: {blind[source]}"
        for source in VULNERABILITY_SCANNERS
        if source in blind
    ]
    return gaps


def assess_control(
    control: Control,
    scan: ImageScan,
    findings: Sequence[AssessedFinding],
    policy: Policy,
    control_waiver: str = "",
) -> ControlResult:
    """The status of one control for one image; `control_waiver` describes an active waiver."""
    if not control.automated:
        return ControlResult(control, ControlStatus.MANUAL, (f"manual: {control.reason}",))
    mapped = [af for af in findings if control.id in af.controls]
    counting = [af for af in mapped if counts_against(af.finding, policy)]
    unwaived = [af for af in counting if not af.waived]
    sources = sources_of(control)
    errors = [e for e in scan.errors if e.source in {scanner_of(k) for k in sources}]
    ran = sorted(sources & scan.ran)
    evidence = [describe(af.finding) for af in counting]
    counted = {id(af) for af in counting}  # identity: `in` on a list is quadratic
    evidence += [
        f"{af.finding.id} (not counted): {describe(af.finding)}"
        for af in mapped
        if id(af) not in counted and af.finding.kind != Kind.VULNERABILITY
    ]
    evidence += [f"{e.source.value} failed: {e.message}" for e in errors]
    waivers = tuple(sorted({af.waived_by for af in counting if af.waived}))
    ids = tuple(dict.fromkeys(af.finding.id for af in counting))
    gaps = vulnerability_gaps(scan, policy) if is_vulnerability_control(control) else []
    if control_waiver and (unwaived or errors or gaps or not ran):
        waivers = (*waivers, control_waiver)
        return ControlResult(control, ControlStatus.WAIVED, tuple(evidence), ids, waivers)
    if unwaived:
        return ControlResult(control, ControlStatus.FAIL, tuple(evidence), ids, waivers)
    if errors:
        return ControlResult(control, ControlStatus.ERROR, tuple(evidence), ids, waivers)
    if counting:
        return ControlResult(control, ControlStatus.WAIVED, tuple(evidence), ids, waivers)
    if gaps:
        return ControlResult(control, ControlStatus.UNVERIFIED, (*evidence, *gaps))
    if not ran:
        needed = ", ".join(sorted(sources))
        return ControlResult(
            control,
            ControlStatus.UNVERIFIED,
            (*evidence, f"no evidence source ran (needs one of: {needed})"),
        )
    below = sum(1 for af in mapped if af.finding.kind == Kind.VULNERABILITY)
    if below:
        evidence.append(f"{below} vulnerabilities below the blocking threshold")
    evidence.append(f"checked by: {', '.join(ran)}")
    return ControlResult(control, ControlStatus.PASS, tuple(evidence))
