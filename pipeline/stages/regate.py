"""The nightly re-gate: published images judged again against today's vulnerability DB.

An image whose inputs did not change is not rebuilt, but the world around it did: a CVE
fixed in Debian today makes yesterday's passing image outdated. So every published image
of the run is pulled by its digest (as a cluster would) and scanned and gated again,
without being rebuilt, and the verdict decides:

  pass     nothing to do;
  rebuild  it fails because of a fixable vulnerability: the target is rebuilt now, and if
           the rebuild does not pass either, the catalogs stop naming the old image;
  kept     it fails for another reason (an unfixed CVE, a control that could not be
           verified): recorded in the summary, the published image stays where it is;
  error    a scanner failed on it: recorded as an error (the run exits 3), image kept.

A pass is recorded with what it rested on (pipeline.stages.regate_ledger); on a night when
none of that changed, the image is not pulled or scanned again and its pass stands.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pipeline
from pipeline.build.upstream import Upstream
from pipeline.compliance.config import load_waivers
from pipeline.errors import DrydockError
from pipeline.models.compliance import ImageVerdict, VerdictStatus
from pipeline.models.findings import Kind
from pipeline.models.provenance import VulnDbSource
from pipeline.models.targets import Plan
from pipeline.publish.current import Current
from pipeline.scan.base import Scanner
from pipeline.scan.resolve import ResolvedImage, release, resolve_reference
from pipeline.scan.trivy import TrivyScanner
from pipeline.stages.regate_ledger import (
    JUDGING_CODE,
    Judged,
    Ledger,
    evidence_key,
    files_digest,
    valid_until,
)
from pipeline.stages.scan import ScanConfig, ScanRun, ScanTarget, scan_images
from pipeline.stages.scan_context import own_bases

log = logging.getLogger("drydock.progress")

PASS = "pass"  # noqa: S105 - a re-gate outcome, not a password
REBUILD = "rebuild"
KEPT = "kept"
ERROR = "error"


@dataclass(frozen=True)
class Regate:
    """What today's gate said about one published image."""

    target: str
    reference: str  # the published image, by digest
    outcome: str  # PASS, REBUILD, KEPT or ERROR
    reasons: tuple[str, ...] = ()
    fixable: tuple[str, ...] = ()  # the fixable findings that force the rebuild
    standing_since: dt.date | None = None  # not scanned: the pass of that day still stands

    def describe(self) -> str:
        if self.outcome == PASS and self.standing_since is not None:
            return (
                f"published image's pass of {self.standing_since.isoformat()} stands: archive,"
                " scanners and scan configuration unchanged since (not scanned again)"
            )
        if self.outcome == PASS:
            return "published image re-gated against today's DB: pass"
        if self.outcome == REBUILD:
            return f"published image has fixable vulnerabilities ({', '.join(self.fixable[:5])})"
        first = self.reasons[0] if self.reasons else "gate failed"
        if self.outcome == ERROR:
            return f"re-gate could not scan the published image: {first}"
        return f"published image fails today's gate without a fixable finding, kept: {first}"


def classify(target: str, reference: str, verdict: ImageVerdict) -> Regate:
    """The re-gate outcome of one verdict (pure)."""
    if verdict.status is VerdictStatus.PASS:
        return Regate(target, reference, PASS)
    if verdict.status is VerdictStatus.ERROR:
        return Regate(target, reference, ERROR, verdict.reasons)
    fixable = tuple(
        dict.fromkeys(
            f"{af.finding.id} ({af.finding.package} {af.finding.installed_version}"
            f" -> {af.finding.fixed_version})"
            for af in verdict.findings
            if af.blocking
            and not af.waived
            and af.finding.kind is Kind.VULNERABILITY
            and af.finding.fixable
        )
    )
    outcome = REBUILD if fixable else KEPT
    return Regate(target, reference, outcome, verdict.reasons, fixable)


def regate_published(
    published: Mapping[str, Current],
    plan: Plan,
    scanners: Sequence[Scanner],
    config: ScanConfig,
    work: Path,
    *,
    jobs: int,
    today: dt.date | None,
    known_bases: frozenset[str] | None,
    check_updates: bool,
    ledger: Ledger | None = None,
    judged: Mapping[str, Judged] | None = None,
) -> tuple[ScanRun | None, dict[str, Regate]]:
    """Pull each published image by digest, scan and gate it; never rebuilds anything.
    With a ledger, an image whose recorded pass rests on exactly `judged[name]` is skipped."""
    if not published:
        return None, {}
    resolved: dict[str, ResolvedImage] = {}
    outcomes: dict[str, Regate] = {}
    day = today or dt.datetime.now(dt.UTC).date()
    judged = judged or {}
    for name, current in published.items():
        reference = f"{current.image.registry}/{current.image.repository}@{current.image.digest}"
        since = (
            ledger.standing(current.image.digest, judged[name], day)
            if ledger is not None and name in judged
            else None
        )
        if since is not None:
            outcomes[name] = Regate(name, reference, PASS, standing_since=since)
            log.info("re-gate %s: pass of %s stands (nothing it rested on changed)", name, since)
            continue
        try:
            resolved[name] = resolve_reference(reference)
        except DrydockError as err:
            outcomes[name] = Regate(name, reference, ERROR, (f"cannot pull it: {err}",))
    if not resolved:
        return None, outcomes
    try:
        targets = [
            ScanTarget.resolved(image, plan.get(name).flavour or "")
            for name, image in resolved.items()
        ]
        log.info("re-gating %d published image(s) against today's DB", len(targets))
        scan = scan_images(
            targets,
            scanners,
            config,
            work,
            jobs=jobs,
            today=today,
            known_bases=known_bases,
            trusted=own_bases(plan),
            check_updates=check_updates,
            postgres_eol=plan.postgres_eol,
        )
    finally:
        release(list(resolved.values()))
    by_digest = {v.digest: v for v in scan.report.images}
    for name, image in resolved.items():
        verdict = by_digest.get(image.scanned)
        reference = f"{image.name}@{image.scanned}"
        if verdict is None:
            outcomes[name] = Regate(name, reference, ERROR, ("no verdict for the image",))
        else:
            outcomes[name] = classify(name, reference, verdict)
        log.info("re-gate %s: %s", name, outcomes[name].outcome)
        if ledger is not None:
            digest = published[name].image.digest
            if outcomes[name].outcome == PASS and name in judged:
                ledger.record(digest, judged[name], day)
            else:
                ledger.forget(digest)
    return scan, outcomes


def judgements(
    plan: Plan,
    names: Sequence[str],
    scanners: Sequence[Scanner],
    config: ScanConfig,
    upstream: Upstream,
    *,
    known_bases: frozenset[str] | None,
    check_updates: bool,
    today: dt.date,
) -> dict[str, Judged]:
    """What each image's re-gate verdict would rest on tonight (see regate_ledger); empty
    when the vulnerability DB does not follow the archive (public or mirror mode)."""
    archive_db = VulnDbSource.DEBIAN_ARCHIVE
    if any(isinstance(s, TrivyScanner) and s.spec.source != archive_db for s in scanners):
        return {}
    root = Path(pipeline.__file__).parent
    judges = [
        ("code", files_digest(root / part for part in JUDGING_CODE)),
        ("config", files_digest([config.controls, config.policy, config.waivers])),
        ("scanners", ", ".join(f"{s.name} {s.version()}" for s in scanners)),
        ("bases", ",".join(sorted(known_bases or ()))),
        ("updates", str(check_updates)),
    ]
    expiries = [w.expires for w in load_waivers(config.waivers)]
    eol = dict(plan.postgres_eol)
    judged: dict[str, Judged] = {}
    for name in names:
        target = plan.get(name)
        try:
            archive = " ".join(upstream.content(target.release))
        except DrydockError as err:
            log.info("re-gate %s: the archive's state is unknown (%s): gating it again", name, err)
            continue
        dates = [*expiries, *([eol[target.major]] if target.major in eol else [])]
        key = evidence_key([*judges, ("archive", archive), ("target", name)])
        judged[name] = Judged(key, valid_until(today, dates))
    return judged
