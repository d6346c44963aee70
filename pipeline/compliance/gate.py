"""The gate: findings, controls, policy, waivers and today's date -> a verdict per image.

Pure and deterministic (today is an argument), so the same inputs always give the same
answer and a run record can be re-judged later. An image fails when a scanner errored
(status "error": not proven safe), when a finding blocks by policy (fixable vulnerability
at or above the threshold, Dockle WARN/FATAL) and no valid waiver covers it, or when a
mandatory control fails, errors or could not be verified.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from pipeline.compliance import waivers as waiver_rules
from pipeline.compliance.evidence import Observed, observe
from pipeline.compliance.mapping import assess_control, blocks_by_itself, controls_for, describe
from pipeline.models.compliance import (
    AssessedFinding,
    ControlResult,
    Controls,
    ControlStatus,
    GateReport,
    ImageScan,
    ImageVerdict,
    Policy,
    VerdictStatus,
    Waiver,
)
from pipeline.models.provenance import ScanProvenance

log = logging.getLogger(__name__)


def _assess_findings(
    scan: ImageScan,
    *,
    controls: Controls,
    policy: Policy,
    waivers: Sequence[Waiver],
    today: dt.date,
    expired: dict[str, None],
) -> tuple[AssessedFinding, ...]:
    assessed = []
    for finding in scan.findings:
        mapped = controls_for(finding, controls)
        match = waiver_rules.for_finding(waivers, scan.image, finding, today)
        expired.update((waiver_rules.expired_note(w), None) for w in match.expired)
        waived_by = waiver_rules.active_note(match.active) if match.active else ""
        if not waived_by and mapped:
            # Every control it maps to is waived: the finding is accepted with them.
            notes: list[str] = []
            for control_id in mapped:
                cmatch = waiver_rules.for_control(waivers, scan.image, control_id, today)
                if cmatch.active is None:
                    notes = []
                    break
                notes.append(waiver_rules.active_note(cmatch.active))
            waived_by = "; ".join(notes)
        assessed.append(
            AssessedFinding(finding, mapped, blocks_by_itself(finding, policy), waived_by)
        )
    return tuple(assessed)


def _assess_controls(
    scan: ImageScan,
    *,
    controls: Controls,
    policy: Policy,
    findings: Sequence[AssessedFinding],
    waivers: Sequence[Waiver],
    today: dt.date,
    expired: dict[str, None],
    observed: Observed,
) -> tuple[ControlResult, ...]:
    results = []
    for control in controls.controls:
        match = waiver_rules.for_control(waivers, scan.image, control.id, today)
        note = waiver_rules.active_note(match.active) if match.active else ""
        result = assess_control(control, scan, findings, policy, note, observed)
        if match.expired and result.status in {
            ControlStatus.FAIL,
            ControlStatus.ERROR,
            ControlStatus.UNVERIFIED,
        }:
            expired.update((waiver_rules.expired_note(w), None) for w in match.expired)
        results.append(result)
    return tuple(results)


def judge_image(
    scan: ImageScan,
    controls: Controls,
    policy: Policy,
    waivers: Sequence[Waiver],
    today: dt.date,
    provenance: ScanProvenance | None = None,
) -> ImageVerdict:
    """The verdict for one image. `provenance` (scanners, DB and when the scan ran) decides
    whether the vulnerability evidence counts; without it, it does not."""
    expired: dict[str, None] = {}
    findings = _assess_findings(
        scan, controls=controls, policy=policy, waivers=waivers, today=today, expired=expired
    )
    results = _assess_controls(
        scan,
        controls=controls,
        policy=policy,
        findings=findings,
        waivers=waivers,
        today=today,
        expired=expired,
        observed=observe(scan, provenance, policy),
    )
    reasons = [f"{e.source.value} failed: {e.message}" for e in scan.errors]
    reasons += [
        f"blocking finding {describe(af.finding)}"
        for af in findings
        if af.blocking and not af.waived
    ]
    if policy.block_on_mandatory_controls:
        reasons += [
            f"mandatory control {r.control.id} ({r.control.title}) is {r.status.value}"
            for r in results
            if r.blocking
        ]
    waived = [
        f"finding {af.finding.id} waived: {af.waived_by}"
        for af in findings
        if af.waived and (af.blocking or af.controls)
    ]
    waived += [
        f"control {r.control.id} waived: {'; '.join(r.waivers)}"
        for r in results
        if r.status == ControlStatus.WAIVED
    ]
    if scan.errors:
        status = VerdictStatus.ERROR
    elif reasons:
        status = VerdictStatus.FAIL
    else:
        status = VerdictStatus.PASS
    log.info("gate: %s %s (%d reasons)", scan.image, status.value, len(reasons))
    return ImageVerdict(
        image=scan.image,
        status=status,
        reasons=tuple(dict.fromkeys(reasons)),
        controls=results,
        findings=findings,
        errors=scan.errors,
        waived=tuple(dict.fromkeys(waived)),
        expired_waivers=tuple(expired),
        digest=scan.digest,
        os=scan.os,
    )


def evaluate(
    images: Sequence[ImageScan],
    controls: Controls,
    policy: Policy,
    waivers: Sequence[Waiver],
    today: dt.date,
    provenance: ScanProvenance | None = None,
) -> GateReport:
    """Judge every image; the report passes only if every image passes."""
    verdicts = tuple(judge_image(s, controls, policy, waivers, today, provenance) for s in images)
    applied = " | ".join(
        [af.waived_by for v in verdicts for af in v.findings]
        + [w for v in verdicts for r in v.controls for w in r.waivers]
    )
    unused = tuple(
        waiver_rules.active_note(w)
        for w in waivers
        if not w.expired(today) and waiver_rules.active_note(w) not in applied
    )
    return GateReport(
        today=today,
        images=verdicts,
        policy=policy,
        expired_waivers=waiver_rules.all_expired(waivers, today),
        unused_waivers=unused,
        provenance=provenance,
    )
