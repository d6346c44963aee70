"""The whole pipeline: plan, build, stage, scan and gate, promote, sign, catalogs.

One direction, one record. The run reads what the release repository holds, builds only
targets whose inputs changed, re-gates the published images of the others against
today's vulnerability DB (rebuilding those with a fixable finding, `stages.regate`),
stages every built image (pushed to `staging/<repository>`, its digest read back), scans
and gates what it built (registry scanners such as Clair read the staged digest),
promotes and signs only what passed, and regenerates the catalogs from the promoted
images (a target that failed keeps its previous digest, unless that digest failed
today's gate with a fixable finding).
Everything it decided is written to one JSON record and a Markdown summary.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.build.events import BuildEvents
from pipeline.build.executor import BuildResult, build_plan, upstream_for
from pipeline.build.freshness import LOCK_LABEL, delta, parse_lock
from pipeline.build.upstream import Upstream
from pipeline.catalog.generate import CatalogSettings
from pipeline.descriptors.load import load_plan
from pipeline.errors import DrydockError, InputError
from pipeline.models.compliance import GateReport, VerdictStatus
from pipeline.models.images import BuiltImage
from pipeline.models.publish import PublishedImage
from pipeline.models.targets import Kind, Plan, Target
from pipeline.publish.current import Current, find_current, pull_published
from pipeline.publish.push import Release, promote, push_to_staging
from pipeline.publish.sign import make_signer, sign_image
from pipeline.publish.tags import tags_for
from pipeline.report.formats import render
from pipeline.scan.base import Scanner
from pipeline.settings import Settings
from pipeline.stages.catalogs import publish_catalogs
from pipeline.stages.promote import stage_record, write_staged
from pipeline.stages.record import write_record
from pipeline.stages.regate import ERROR, REBUILD, Regate, judgements, regate_published
from pipeline.stages.regate_ledger import Judged, Ledger
from pipeline.stages.scan import ScanConfig, ScanRun, ScanTarget, scan_images
from pipeline.stages.scan_context import attach_sources, built_dockerfile, own_bases
from pipeline.tools.cosign import locate_cosign
from pipeline.tools.registry import RegistryClient

log = logging.getLogger("drydock.progress")

REPORT_FILES = {
    "json": "gate.json",
    "sarif": "gate.sarif",
    "markdown": "gate.md",
    "junit": "gate.junit.xml",
    "html": "gate.html",
}


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path
    scanners: tuple[Scanner, ...]
    targets: tuple[str, ...] = ()
    shard: tuple[int, int] | None = None  # (index, count), 1-based
    kubeconfig: Path | None = None
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    sign: bool = True
    signing_key: Path | None = None
    keyless: bool = False  # sign with the CI's OIDC identity instead of a key pair
    check_updates: bool = True
    today: dt.date | None = None
    stage_only: bool = False  # CI shards: stage and verify only; `drydock promote` follows
    rebuild: bool = False  # build even targets whose inputs equal the published image's
    regate: bool = True  # gate unchanged published images again against today's DB


@dataclass
class TargetOutcome:
    target: str
    decision: str = "pending"  # unchanged | built | failed-build | failed-gate | ...
    reason: str = ""
    package_delta: list[str] = field(default_factory=list)
    staged: str = ""
    published: str = ""
    signed: bool = False
    regate: str = ""  # what re-gating the published image said, when it was re-gated
    size: int = 0  # bytes, as the engine counts them; 0 when the image is not local


@dataclass
class RunOutcome:
    outcomes: dict[str, TargetOutcome] = field(default_factory=dict)
    build: BuildResult | None = None
    gate: GateReport | None = None
    published: list[PublishedImage] = field(default_factory=list)
    staged: list[dict[str, Any]] = field(default_factory=list)  # with stage_only
    catalogs: list[str] = field(default_factory=list)
    applied: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # infrastructure: exit 3
    gate_failed: list[str] = field(default_factory=list)  # exit 1
    record: Path | None = None
    summary: str = ""
    seconds: float = 0.0
    regate: dict[str, Regate] = field(default_factory=dict)
    regate_report: GateReport | None = None
    withdrawn: list[str] = field(default_factory=list)  # "name: reference (why)"

    @property
    def exit_code(self) -> int:
        return 3 if self.errors else 1 if self.gate_failed else 0


def _operands_and_operator(plan: Plan) -> list[Target]:
    return [t for t in plan if t.kind is not Kind.BASE]


def _current(client: RegistryClient, targets: list[Target]) -> dict[str, Current]:
    found: dict[str, Current] = {}
    for target in targets:
        cur = find_current(client, target)
        if cur is not None:
            found[target.name] = cur
    return found


Staged = dict[str, tuple[PublishedImage, Release]]  # target name -> staged image, release


def _release(target: Target, image: BuiltImage) -> Release:
    created = image.label("org.opencontainers.image.created")
    when = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return Release.for_target(target, tags_for(target, image.packages, when), created)


def _stage_all(run: RunOutcome, plan: Plan, client: RegistryClient) -> Staged:
    """Push every newly built image to staging and prove its digest, before any scan."""
    assert run.build is not None  # noqa: S101 - set by the build stage
    staged: Staged = {}
    for name, image in run.build.images.items():
        if name not in run.outcomes or image.published:
            continue
        release = _release(plan.get(name), image)
        try:
            staged[name] = (
                push_to_staging(
                    image.image_id or image.tag, release, client, image_id=image.image_id
                ),
                release,
            )
        except DrydockError as err:
            out = run.outcomes[name]
            out.decision, out.reason = "failed-publish", str(err).splitlines()[0]
            run.errors.append(f"{name}: {out.reason}")
            continue
        run.outcomes[name].staged = staged[name][0].reference
    return staged


def _bases(built: Mapping[str, BuiltImage], plan: Plan) -> frozenset[str]:
    """The bases Drydock built, and the images of this plan others are built on (standard
    FROM minimal): each was built here from a trusted base, and is gated itself."""
    parents = {t.parent for t in plan if t.parent}
    return frozenset(
        img.image_id
        for name, img in built.items()
        if (name.startswith("base-") or name in parents) and img.image_id
    )


def _regate(
    run: RunOutcome,
    plan: Plan,
    current: dict[str, Current],
    settings: Settings,
    options: RunOptions,
    events: BuildEvents,
    upstream: Upstream,
) -> None:
    """Gate the published images of unchanged targets again; rebuild those with a fixable
    finding (into run.build, so they are scanned and published like any other build)."""
    assert run.build is not None  # noqa: S101 - set by the build stage
    unchanged = {n: current[n] for n, img in run.build.images.items() if img.published}
    if not options.regate or not unchanged:
        return
    config, bases = ScanConfig.in_dir(settings.scan_config), _bases(run.build.images, plan)
    judged = _judged(run, plan, list(unchanged), settings, options, upstream)
    scan, run.regate = regate_published(
        unchanged,
        plan,
        options.scanners,
        config,
        settings.work / "regate",
        jobs=settings.jobs,
        today=options.today,
        known_bases=bases,
        check_updates=options.check_updates,
        ledger=Ledger(settings.cache / "regate"),
        judged=judged,
    )
    if scan is not None:
        attach_sources(scan, settings)
    run.regate_report = scan.report if scan else None
    for name, result in run.regate.items():
        run.outcomes[name].regate = result.describe()
        if result.outcome == ERROR:
            run.errors.append(f"{name}: re-gate failed: {result.describe()}")
    rebuild = tuple(n for n, r in run.regate.items() if r.outcome == REBUILD)
    if not rebuild:
        return
    log.info("rebuilding %s: fixable vulnerabilities in the published image", ", ".join(rebuild))
    again = build_plan(
        plan.select(rebuild),
        settings,
        events,
        rebuild=True,
        raise_on_failure=False,
        upstream=upstream,
    )
    for name in rebuild:
        run.build.images.pop(name, None)
        if name in again.images:
            run.build.images[name] = again.images[name]
    run.build.failures.update({n: r for n, r in again.failures.items() if n in rebuild})
    run.build.skipped.update({n: r for n, r in again.skipped.items() if n in rebuild})
    for name in rebuild:
        out = run.outcomes[name]
        out.decision, out.reason, out.published = "pending", "", ""
        if name in again.failures or name in again.skipped:
            reason = (again.failures.get(name) or again.skipped[name]).splitlines()[0]
            out.decision, out.reason = "failed-build", reason
            run.errors.append(f"{name}: rebuild after the re-gate failed: {reason}")


def _judged(
    run: RunOutcome,
    plan: Plan,
    names: Sequence[str],
    settings: Settings,
    options: RunOptions,
    upstream: Upstream,
) -> dict[str, Judged]:
    """What a verdict on these targets' images rests on tonight (pipeline.stages.regate)."""
    assert run.build is not None  # noqa: S101 - set by the build stage
    return judgements(
        plan,
        names,
        options.scanners,
        ScanConfig.in_dir(settings.scan_config),
        upstream,
        known_bases=_bases(run.build.images, plan),
        check_updates=options.check_updates,
        today=options.today or _today(),
    )


def _record_passes(
    run: RunOutcome, judged: Mapping[str, Judged], settings: Settings, today: dt.date
) -> None:
    """A published image passed its gate on tonight's evidence: the next nightly's re-gate
    need not repeat it while that evidence stands."""
    ledger = Ledger(settings.cache / "regate")
    for image in run.published:
        if image.gated and image.target in judged:
            ledger.record(image.digest, judged[image.target], today)


def _withdraw(run: RunOutcome, current: dict[str, Current]) -> dict[str, Current]:
    """`current` without the images that failed today's gate with a fixable finding and
    were not replaced in this run: the catalogs must not keep naming them."""
    replaced = {p.target for p in run.published}
    kept = dict(current)
    for name, result in run.regate.items():
        if result.outcome == REBUILD and name not in replaced and name in kept:
            del kept[name]
            run.withdrawn.append(f"{name}: {result.reference} ({result.describe()})")
    return kept


def _scan(
    built: dict[str, BuiltImage],
    plan: Plan,
    settings: Settings,
    options: RunOptions,
    staged: Staged | None = None,
) -> ScanRun | None:
    todo = [
        img for img in built.values() if not img.published and not img.target.startswith("base-")
    ]
    if not todo:
        return None
    bases = _bases(built, plan)
    targets = [
        ScanTarget(
            img.image_id or img.tag,  # by id: another build may move the tag meanwhile
            name=img.tag,
            flavour=plan.get(img.target).flavour or "",
            remote=staged[img.target][0].reference if staged and img.target in staged else "",
            target=img.target,
            dockerfile=built_dockerfile(settings, img.target),
        )
        for img in todo
    ]
    log.info(
        "scanning %d image(s) with %s", len(targets), ", ".join(s.name for s in options.scanners)
    )
    scan = scan_images(
        targets,
        options.scanners,
        ScanConfig.in_dir(settings.scan_config),
        settings.work / "scan",
        jobs=settings.jobs,
        today=options.today,
        known_bases=bases,
        trusted=own_bases(plan),
        check_updates=options.check_updates,
        on_done=lambda s: log.info("scanned %s (%d findings)", s.image, len(s.findings)),
        postgres_eol=plan.postgres_eol,
    )
    attach_sources(scan, settings)
    return scan


def _publish_one(
    target: Target,
    staged: tuple[PublishedImage, Release],
    gated: bool,
    sbom: Path | None,
    client: RegistryClient,
    options: RunOptions,
    outcome: TargetOutcome,
    run: RunOutcome,
) -> PublishedImage | None:
    image, release = staged
    if options.stage_only:
        run.staged.append(stage_record(image, release, gated, sbom, options.out_dir))
        return None
    if not gated:
        log.warning("%s failed its gate: left in %s only", target.name, image.reference)
        return None
    result = promote(image, release, client, gated=True)
    outcome.published = result.reference
    run.published.append(result)
    if options.sign:
        if sbom is None:
            raise DrydockError(f"{target.name}: no SBOM from the scan; not signed")
        cosign = locate_cosign(insecure_registry=client.base.startswith("http:"))
        signer = make_signer(cosign, keyless=options.keyless, private=options.signing_key)
        sign_image(cosign, result, signer, sbom)
        outcome.signed = True
    log.info("published %s%s", result.reference, " (signed)" if outcome.signed else "")
    return result


def _note_build(run: RunOutcome, result: BuildResult, current: dict[str, Current]) -> None:
    for name, reason in {**result.failures, **result.skipped}.items():
        if name in run.outcomes:
            run.outcomes[name].decision, run.outcomes[name].reason = "failed-build", reason
            run.errors.append(f"{name}: build failed: {reason.splitlines()[0]}")
    for name, image in result.images.items():
        if name not in run.outcomes:
            continue
        out = run.outcomes[name]
        out.size = image.size
        if name in current:
            new_lock = parse_lock(image.label(LOCK_LABEL))
            out.package_delta = delta(parse_lock(current[name].lock), new_lock)
        if image.published:
            out.decision, out.reason = "unchanged", "inputs identical to the published image"
            out.published = current[name].image.reference
        else:
            out.reason = built_reason(name in current, out.package_delta)


def built_reason(was_published: bool, package_delta: Sequence[str]) -> str:
    """Why a target was built this run (the summary's "why" column)."""
    if not was_published:
        return "no image published for it yet"
    if package_delta:
        more = f" and {len(package_delta) - 3} more" if len(package_delta) > 3 else ""
        return "packages changed: " + ", ".join(package_delta[:3]) + more
    return "inputs differ from the published image's (Dockerfile, files, base image or --rebuild)"


def _publish_all(
    run: RunOutcome,
    plan: Plan,
    scan: ScanRun | None,
    staged: Staged,
    client: RegistryClient,
    options: RunOptions,
) -> None:
    """Promote and sign only what passed its gate; everything staged stays in staging."""
    verdicts = {v.image: v for v in scan.report.images} if scan else {}
    assert run.build is not None  # noqa: S101 - set by the build stage
    for name, image in run.build.images.items():
        if name not in staged:
            continue
        out, target = run.outcomes[name], plan.get(name)
        verdict = verdicts.get(image.tag)
        gated = verdict is not None and verdict.status is VerdictStatus.PASS
        if verdict is None or verdict.status is VerdictStatus.ERROR:
            out.decision, out.reason = "failed-scan", "a scanner failed: not proven safe"
            run.errors.append(f"{name}: scanner failure")
        elif not gated:
            out.decision = "failed-gate"
            out.reason = "; ".join(verdict.reasons[:3]) if verdict.reasons else "gate failed"
            run.gate_failed.append(name)
        else:
            out.decision = "built"
        sbom = scan.sboms.get(image.tag) if scan else None
        try:
            _publish_one(target, staged[name], gated, sbom, client, options, out, run)
        except DrydockError as err:
            out.decision, out.reason = "failed-publish", str(err).splitlines()[0]
            run.errors.append(f"{name}: {out.reason}")


def catalog_images(
    targets: Sequence[Target], promoted: Sequence[PublishedImage], current: Mapping[str, Current]
) -> list[PublishedImage]:
    """What the catalogs name: per operand of `targets` (every operand of the plan, not only
    those this run chose), the image promoted now, else the one published before."""
    newest = {p.target: p for p in promoted}
    return [
        newest.get(t.name) or current[t.name].image
        for t in targets
        if t.kind is Kind.OPERAND and (t.name in newest or t.name in current)
    ]


def _catalogs(
    run: RunOutcome, images: list[Target], current: dict[str, Current], options: RunOptions
) -> None:
    chosen = catalog_images(images, run.published, current)
    if not chosen:
        return
    try:
        run.catalogs, run.applied = publish_catalogs(
            chosen, options.out_dir, options.catalog, options.kubeconfig
        )
    except DrydockError as err:
        run.errors.append(f"catalogs: {err}")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def run_pipeline(settings: Settings, options: RunOptions, events: BuildEvents) -> RunOutcome:
    """Run every stage; never raises for per-target failures (see RunOutcome.exit_code)."""
    start = time.monotonic()
    run = RunOutcome()
    full_plan = plan = load_plan(settings.descriptors, settings.templates)
    if options.targets:
        unknown = [t for t in options.targets if t not in plan.names()]
        if unknown:
            why = [
                f"{t} (retired: {plan.retired_reason(t)})" if plan.retired_reason(t) else t
                for t in unknown
            ]
            raise InputError(f"unknown target(s): {', '.join(why)} (see `drydock plan`)")
        plan = plan.select(options.targets)
    if options.shard is not None:
        plan = plan.shard(*options.shard)
    images = _operands_and_operator(plan)
    run.outcomes = {t.name: TargetOutcome(t.name) for t in images}
    client = RegistryClient.from_environment(settings.registry)
    client.ping()
    current = _current(client, images)
    log.info("%d of %d target(s) already published", len(current), len(images))

    upstream = upstream_for(plan, settings)  # one read of the archive for the whole run
    run.build = build_plan(
        plan,
        settings,
        events,
        rebuild=options.rebuild,
        published={n: c.state for n, c in current.items()},
        pull=pull_published,
        raise_on_failure=False,
        upstream=upstream,
    )
    _note_build(run, run.build, current)
    _regate(run, plan, current, settings, options, events, upstream)
    fresh = [n for n, img in run.build.images.items() if not img.published and n in run.outcomes]
    judged = _judged(run, plan, fresh, settings, options, upstream) if options.regate else {}

    staged = _stage_all(run, plan, client)
    scan = _scan(run.build.images, plan, settings, options, staged)
    run.gate = scan.report if scan else None
    # Always written: a run that scanned nothing still uploads an (empty) SARIF run, so
    # code scanning closes the alerts of images that are fine now.
    reports = options.out_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    report = scan.report if scan else GateReport(today=options.today or _today(), images=())
    for fmt, filename in REPORT_FILES.items():
        (reports / filename).write_text(render(report, fmt), encoding="utf-8")
        if run.regate_report is not None:  # the published images against today's DB
            regate_file = reports / filename.replace("gate.", "regate.", 1)
            regate_file.write_text(render(run.regate_report, fmt), encoding="utf-8")

    _publish_all(run, plan, scan, staged, client, options)
    if not options.stage_only:
        _record_passes(run, judged, settings, options.today or _today())
    if options.stage_only:
        write_staged(run.staged, options.out_dir)
    else:
        # A catalog lists every major of its flavour and release, chosen or not: targets
        # left out of this run keep their published image (else their major would vanish).
        everything = _operands_and_operator(full_plan)
        others = [t for t in everything if t.name not in run.outcomes]
        named = _withdraw(run, {**current, **_current(client, others)})
        _catalogs(run, everything, named, options)
    run.seconds = time.monotonic() - start
    run.record, run.summary = write_record(run, options.out_dir)
    return run
