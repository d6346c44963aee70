"""Build a plan as a DAG: bases first, then every image on them, with bounded parallelism.

A target starts as soon as the targets it depends on are built; at most `jobs` image
builds run at once, and every base starts at once (a base is mostly downloads, and each
release's images wait only for their own). A failed target fails only its dependents; the
others go on, and the run record says what failed and why. An image whose fingerprint
matches the one already in the local engine is reused, not rebuilt; the work a build
needs besides the engine (apt's versions, the operator's wheelhouse, dpkg inventories) is
asked for once (pipeline.build.resolve, .inputs, .inventory).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.archive.feed import feed_dir
from pipeline.archive.mirrors import Mirrors, resolve
from pipeline.build.base import build_base
from pipeline.build.events import BuildEvents
from pipeline.build.freshness import LOCK_FILE, LOCK_LABEL, label_value, lock_text
from pipeline.build.inputs import ContextFiles, context_files
from pipeline.build.inventory import inventory
from pipeline.build.resolve import Resolver, root_of
from pipeline.build.upstream import Upstream
from pipeline.errors import BuildError, DescriptorError, DrydockError
from pipeline.models.images import BuiltImage, PublishedState
from pipeline.models.targets import Kind, Plan, Target
from pipeline.render.context import fingerprint, write_context
from pipeline.render.dockerfile import RenderOptions, render
from pipeline.settings import Settings
from pipeline.tools import docker

log = logging.getLogger(__name__)

FINGERPRINT_LABEL = "io.drydock.fingerprint"
Pull = Callable[[str], str]  # reference by digest -> local image id


@dataclass
class BuildResult:
    images: dict[str, BuiltImage] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    record: Path | None = None
    builder: str = ""
    seconds: float = 0.0
    apt_containers: int = 0  # how many times apt was asked in a container
    apt_from_archive: int = 0  # base images whose kept answer the archive showed still stands


def upstream_for(plan: Plan, settings: Settings) -> Upstream:
    """The archive check for the plan's bases, read from the mirrors they are built from."""

    def mirrors(release: str) -> Mirrors:
        base = plan.get(f"base-{release}")
        return resolve(base.param("mirror"), base.param("security_mirror"))

    return Upstream(feed_dir(settings.cache), settings.cache / "resolutions", mirrors)


def _base_of(target: Target, images: dict[str, BuiltImage]) -> tuple[str, str]:
    """(FROM reference, base image id or digest)."""
    if target.base in images:
        base = images[target.base]
        return base.tag, base.image_id
    return target.base, target.base.rsplit("@", 1)[-1]


def _root_of(target: Target, plan: Plan, images: dict[str, BuiltImage]) -> tuple[str, str, str]:
    """(root base name, reference, image id) of the Debian base a target's image starts
    from: where apt is asked what it would install."""
    root = root_of(target, plan)
    if root in images:
        return root, images[root].tag, images[root].image_id
    return root, root, root.rsplit("@", 1)[-1]


def _ensure_local(parent: BuiltImage, state: PublishedState | None, pull: Pull | None) -> None:
    """A target is built on `parent`, which this run did not build (it equals the published
    image): find it in the engine by id, else pull the published image by digest."""
    existing = docker.inspect(parent.tag)
    if existing is not None and existing["Id"] == parent.image_id:
        return
    if docker.inspect(parent.image_id) is None:
        if state is None or not state.reference or pull is None:
            raise BuildError(
                f"{parent.target} is needed as a base but is neither in the engine "
                "nor pullable from the release repository"
            )
        pulled = pull(state.reference)
        if pulled != parent.image_id:
            raise BuildError(f"{state.reference} pulled as {pulled}, not {parent.image_id}")
    docker.tag(parent.image_id, parent.tag)


@dataclass(frozen=True)
class BuildContext:
    """What every target's build shares within one build_plan call."""

    plan: Plan
    settings: Settings
    builder: docker.Builder
    events: BuildEvents
    created: str
    resolver: Resolver
    rebuild: bool = False
    published: Mapping[str, PublishedState] = field(default_factory=dict)
    pull: Pull | None = None
    # Context files being prepared ahead (the operator's wheelhouse downloads while the
    # bases build); a target without an entry prepares its own.
    prepared: Mapping[str, Future[ContextFiles]] = field(default_factory=dict)

    def inputs(self, target: Target) -> ContextFiles:
        if target.name in self.prepared:
            return self.prepared[target.name].result()
        return context_files(target, self.settings, self.plan.base_max_age_hours, self.rebuild)


def build_image(target: Target, images: dict[str, BuiltImage], ctx: BuildContext) -> BuiltImage:
    start = time.monotonic()
    settings, events = ctx.settings, ctx.events
    base_ref, base_id = _base_of(target, images)
    inputs = ctx.inputs(target)
    if inputs.wheelhouse_reused:
        events.step(target.name, "wheelhouse unchanged, reused")
    events.step(target.name, "resolving package versions")
    _, root_ref, root_id = _root_of(target, ctx.plan, images)
    versions = ctx.resolver.lock_for(target, root_ref, root_id)
    scratch = settings.work / "scratch" / target.name
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / LOCK_FILE).write_text(lock_text(versions), encoding="utf-8")
    files = {**inputs.files, LOCK_FILE: scratch / LOCK_FILE}
    text = render(
        target,
        RenderOptions(
            base_ref,
            ctx.builder.buildkit,
            settings.source_url,
            inputs.requirement,
            settings.cache_namespace,
        ),
        settings.templates,
    )
    context = write_context(settings.work / "contexts" / target.name, text, files)
    fp = fingerprint(context, base_id)
    lock_labels = ((FINGERPRINT_LABEL, fp), (LOCK_LABEL, label_value(versions)))
    state = ctx.published.get(target.name)
    existing = docker.inspect(target.local_tag)
    local_fp = docker.labels_of(existing).get(FINGERPRINT_LABEL) if existing else None
    if state is not None and state.fingerprint == fp and not ctx.rebuild:
        events.step(target.name, "identical to the published image: nothing to do")
        # The published image itself, not whatever local image carries the same fingerprint
        # label (another build of the same inputs, or anything FROM it): a target built on
        # this one must be built on what was published and gated.
        local_id = str(existing["Id"]) if existing is not None and local_fp == fp else ""
        image_id = state.image_id or local_id
        same_local = bool(local_id) and local_id == image_id
        in_engine = existing if same_local else (docker.inspect(image_id) if image_id else None)
        return BuiltImage(
            target=target.name,
            tag=target.local_tag,
            image_id=image_id,
            fingerprint=fp,
            labels=lock_labels,
            packages=(),
            seconds=time.monotonic() - start,
            builder=ctx.builder.kind,
            reused=True,
            published=True,
            size=int(in_engine.get("Size", 0)) if in_engine else 0,  # 0: not pulled here
        )
    if target.parent:
        _ensure_local(images[target.parent], ctx.published.get(target.parent), ctx.pull)
    if not ctx.rebuild and existing is not None and local_fp == fp:
        events.step(target.name, "unchanged inputs, reusing the local image")
        image_id, inspected, reused = str(existing["Id"]), existing, True
    else:
        image_id = docker.build(
            ctx.builder,
            context,
            target.local_tag,
            build_args={
                "CREATED": ctx.created,
                "REVISION": settings.revision,
                "BASE_DIGEST": base_id,
            },
            labels=dict(lock_labels),
            on_line=lambda line: events.step(target.name, line),
        )
        inspected, reused = docker.inspect(image_id) or {}, False
    return BuiltImage(
        target=target.name,
        tag=target.local_tag,
        image_id=image_id,
        fingerprint=fp,
        labels=tuple(sorted(docker.labels_of(inspected).items())),
        packages=inventory(image_id, settings.cache),
        seconds=time.monotonic() - start,
        builder=ctx.builder.kind,
        reused=reused,
        size=int(inspected.get("Size", 0)),
    )


def _build_one(
    target: Target, images: dict[str, BuiltImage], ctx: BuildContext, force_base: bool
) -> BuiltImage:
    if target.kind is Kind.BASE:
        return build_base(
            target,
            ctx.settings.work,
            ctx.plan.base_max_age_hours,
            lambda text: ctx.events.step(target.name, text),
            force=force_base,
            resolver=ctx.resolver,
            cache=ctx.settings.cache,
        )
    return build_image(target, images, ctx)


def build_plan(
    plan: Plan,
    settings: Settings,
    events: BuildEvents,
    *,
    force_base: bool = False,
    rebuild: bool = False,
    published: Mapping[str, PublishedState] | None = None,
    pull: Pull | None = None,
    raise_on_failure: bool = True,
    upstream: Upstream | None = None,
) -> BuildResult:
    """Build every target of plan; raises BuildError (after writing the record) on failure.

    `published` holds, per target name, what its release repository holds: a target whose
    inputs still give that fingerprint is not built at all (`published=True`); `pull`
    fetches such an image by digest when another target is built on it. `upstream`: the
    run's read of the archive, when the caller reads it too (else one of the build's own)."""
    started = time.monotonic()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    builder = docker.detect_builder(settings.builder)
    log.info("builder: %s (%s), jobs: %d", builder.kind, builder.cli, settings.jobs)
    result = BuildResult(builder=builder.kind)
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
    prepared = {
        t.name: ahead.submit(context_files, t, settings, plan.base_max_age_hours, rebuild)
        for t in plan
        if t.kind is Kind.OPERATOR
    }
    ctx = BuildContext(
        plan,
        settings,
        builder,
        events,
        created,
        Resolver(
            plan,
            upstream=upstream or upstream_for(plan, settings),
            installed=lambda image_id: {
                p.name: p.version for p in inventory(image_id, settings.cache)
            },
        ),
        rebuild,
        published or {},
        pull,
        prepared,
    )
    pending = list(plan.targets)
    running: dict[Future[BuiltImage], Target] = {}
    # Bases start at once, all of them (each release's image builds wait only for their own
    # base): they take no image-build slot, so `jobs` bounds the image builds alone.
    workers = max(1, settings.jobs) + sum(1 for t in plan if t.kind is Kind.BASE)

    def free_slot(target: Target) -> bool:
        busy = sum(1 for t in running.values() if t.kind is not Kind.BASE)
        return target.kind is Kind.BASE or busy < settings.jobs

    with ahead, ThreadPoolExecutor(max_workers=workers) as pool:
        while pending or running:
            for target in list(pending):
                blocked = [
                    d for d in target.depends_on if d in result.failures or d in result.skipped
                ]
                if blocked:
                    pending.remove(target)
                    result.skipped[target.name] = f"depends on {', '.join(blocked)}, which failed"
                    events.skipped(target.name, result.skipped[target.name])
                elif all(d in result.images for d in target.depends_on) and free_slot(target):
                    pending.remove(target)
                    events.started(target.name)
                    fut = pool.submit(_build_one, target, dict(result.images), ctx, force_base)
                    running[fut] = target
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                target = running.pop(fut)
                try:
                    image = fut.result()
                except DescriptorError:
                    raise
                except DrydockError as err:
                    result.failures[target.name] = str(err)
                    events.failed(target.name, str(err))
                else:
                    result.images[target.name] = image
                    events.finished(target.name, image)
    result.seconds = time.monotonic() - started
    result.apt_containers = ctx.resolver.containers
    result.apt_from_archive = ctx.resolver.from_archive
    result.record = write_record(result, settings, created)
    if result.failures and raise_on_failure:
        names = ", ".join(sorted(result.failures))
        raise BuildError(
            f"{len(result.failures)} target(s) failed: {names} (record: {result.record})"
        )
    return result


def record_document(result: BuildResult, created: str) -> dict[str, object]:
    """The JSON build record: what was built, from what, with which packages."""
    return {
        "created": created,
        "builder": result.builder,
        "seconds": round(result.seconds, 2),
        "apt_containers": result.apt_containers,
        "apt_from_archive": result.apt_from_archive,
        "images": [
            {
                **{k: v for k, v in asdict(img).items() if k not in ("labels", "packages")},
                "seconds": round(img.seconds, 2),
                "labels": dict(img.labels),
                "packages": [asdict(p) for p in img.packages],
            }
            for img in result.images.values()
        ],
        "failures": result.failures,
        "skipped": result.skipped,
    }


def write_record(result: BuildResult, settings: Settings, created: str) -> Path:
    settings.records.mkdir(parents=True, exist_ok=True)
    stamp = created.replace(":", "").replace("-", "")
    path = settings.records / f"build-{stamp}.json"
    text = json.dumps(record_document(result, created), indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    (settings.records / "build-latest.json").write_text(text + "\n", encoding="utf-8")
    return path
