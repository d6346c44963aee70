"""Findings -> CIS/DISA controls, and each control's status for one image.

The control catalogue names, per control, the Dockle codes, Trivy classes (and check ids),
Clair classes and native checks that are its evidence, and what evidence it `requires`.
A finding maps to every control whose evidence it matches. A control passes only when
every source it requires ran *and could see the problem* (`pipeline.compliance.evidence`)
- or, for a control that requires nothing in particular, when at least one of its
sources did - and nothing that counts against it was found: "no scanner looked" or "the
scanner was blind" is `unverified`, "a scanner it needs crashed" is `error`, never `pass`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from pipeline.compliance.crosscheck import ran_key
from pipeline.compliance.evidence import Observed, observe
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


def _absent(key: str, scan: ImageScan) -> str:
    return "did not run" if key not in scan.ran else "cannot see"


def _unmet(control: Control, observed: Observed, scan: ImageScan) -> list[str]:
    """One line per required group that no source satisfies, saying why."""
    lines = []
    for group in control.requires:
        if any(observed.has(key, control) for key in group):
            continue
        why = [f"{key}: {observed.why(key) or _absent(key, scan)}" for key in group]
        lines.append(f"requires {' | '.join(group)}; " + "; ".join(why))
    return lines


def _blind_notes(control: Control, observed: Observed, sources: frozenset[str]) -> list[str]:
    """Sources of this control that ran but were not counted, and why."""
    notes = [
        f"{key} not counted: {observed.why(key)}"
        for key in sorted(sources | {k for g in control.requires for k in g})
        if observed.why(key) and key != RAN_DOCKLE
    ]
    notes += [
        f"dockle {code} not counted: {observed.why(f'{RAN_DOCKLE}:{code}')}"
        for code in control.evidence.dockle
        if observed.why(f"{RAN_DOCKLE}:{code}")
    ]
    return notes


def is_vulnerability_control(control: Control) -> bool:
    ev = control.evidence
    return bool(ev.clair) or any(t.cls is TrivyClass.VULNERABILITY for t in ev.trivy)


def vulnerability_gaps(scan: ImageScan, observed: Observed, policy: Policy) -> list[str]:
    """Why the image's vulnerability evidence falls short of the policy's
    `required_scanners` ([] when it does not): a required scanner that did not run, or
    that ran but could not see (a stale or empty database, no OS detected)."""
    failed = {e.source for e in scan.errors}
    gaps = []
    for source in policy.required_scanners:
        key = ran_key(source)
        if key in observed.ran or source in failed:
            continue
        why = observed.why(key)
        gaps.append(
            f"required scanner {source.value} could not see: {why}"
            if why
            else f"required scanner {source.value} did not run"
        )
    return gaps


PARTIAL = "PARTIAL"


def assess_control(
    control: Control,
    scan: ImageScan,
    findings: Sequence[AssessedFinding],
    policy: Policy,
    control_waiver: str = "",
    observed: Observed | None = None,
) -> ControlResult:
    """The status of one control for one image (see `_assess`); a control that checks
    only part of what its title says gets that said first in its evidence."""
    result = _assess(control, scan, findings, policy, control_waiver, observed)
    if not control.partial or not control.automated:
        return result
    line = f"{PARTIAL}: {control.partial}"
    return dataclasses.replace(result, evidence=(line, *result.evidence))


def _assess(
    control: Control,
    scan: ImageScan,
    findings: Sequence[AssessedFinding],
    policy: Policy,
    control_waiver: str = "",
    observed: Observed | None = None,
) -> ControlResult:
    """The status of one control for one image; `control_waiver` describes an active waiver.
    `observed` is what could see (`evidence.observe`); without it nothing about the
    vulnerability DB is known, so vulnerability evidence does not count."""
    if not control.automated:
        return ControlResult(control, ControlStatus.MANUAL, (f"manual: {control.reason}",))
    observed = observed if observed is not None else observe(scan, None, policy)
    mapped = [af for af in findings if control.id in af.controls]
    counting = [af for af in mapped if counts_against(af.finding, policy)]
    unwaived = [af for af in counting if not af.waived]
    sources = sources_of(control)
    errors = [e for e in scan.errors if e.source in {scanner_of(k) for k in sources}]
    ran = sorted(k for k in sources if observed.has(k, control))
    unmet = _unmet(control, observed, scan)
    evidence = [describe(af.finding) for af in counting]
    counted = {id(af) for af in counting}  # identity: `in` on a list is quadratic
    evidence += [
        f"{af.finding.id} (not counted): {describe(af.finding)}"
        for af in mapped
        if id(af) not in counted and af.finding.kind != Kind.VULNERABILITY
    ]
    evidence += [f"{e.source.value} failed: {e.message}" for e in errors]
    evidence += _blind_notes(control, observed, sources)
    waivers = tuple(sorted({af.waived_by for af in counting if af.waived}))
    ids = tuple(dict.fromkeys(af.finding.id for af in counting))
    gaps = vulnerability_gaps(scan, observed, policy) if is_vulnerability_control(control) else []
    if control_waiver and (unwaived or errors or not ran or unmet or gaps):
        waivers = (*waivers, control_waiver)
        return ControlResult(control, ControlStatus.WAIVED, tuple(evidence), ids, waivers)
    if unwaived:
        return ControlResult(control, ControlStatus.FAIL, tuple(evidence), ids, waivers)
    if errors:
        return ControlResult(control, ControlStatus.ERROR, tuple(evidence), ids, waivers)
    if counting:
        return ControlResult(control, ControlStatus.WAIVED, tuple(evidence), ids, waivers)
    if not ran or unmet or gaps:
        needed = ", ".join(sorted(sources))
        missing = [*unmet, *gaps] or [
            f"no evidence source ran and could see (needs one of: {needed})"
        ]
        return ControlResult(control, ControlStatus.UNVERIFIED, (*evidence, *missing))
    below = sum(1 for af in mapped if af.finding.kind == Kind.VULNERABILITY)
    if below:
        evidence.append(f"{below} vulnerabilities below the blocking threshold")
    evidence.append(f"checked by: {', '.join(ran)}")
    return ControlResult(control, ControlStatus.PASS, tuple(evidence))
