"""Build a plan as a DAG: bases first, then every image on them, with bounded parallelism.

A target starts as soon as the targets it depends on are built; at most `jobs` builds run
at once. A failed target fails only its dependents; the others go on, and the run record
says what failed and why. An image whose fingerprint matches the one already in the
local engine is reused, not rebuilt.
"""

from __future__ import annotations

import json
import logging
import time
import tomllib
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.build.base import build_base
from pipeline.build.events import BuildEvents
from pipeline.build.freshness import (
    LOCK_FILE,
    LOCK_LABEL,
    apt_packages,
    label_value,
    lock_text,
    parse_simulation,
)
from pipeline.errors import BuildError, DescriptorError, DrydockError, Problem
from pipeline.models.images import BuiltImage, InstalledPackage
from pipeline.models.targets import Kind, PackageSource, Plan, Target
from pipeline.render.context import fingerprint, write_context
from pipeline.render.dockerfile import RenderOptions, render
from pipeline.settings import Settings
from pipeline.tools import docker, pip

log = logging.getLogger(__name__)

FINGERPRINT_LABEL = "io.drydock.fingerprint"


@dataclass
class BuildResult:
    images: dict[str, BuiltImage] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    record: Path | None = None
    builder: str = ""
    seconds: float = 0.0


def _base_of(target: Target, images: dict[str, BuiltImage]) -> tuple[str, str]:
    """(FROM reference, base image id or digest)."""
    if target.base in images:
        base = images[target.base]
        return base.tag, base.image_id
    return target.base, target.base.rsplit("@", 1)[-1]


def _context_files(
    target: Target, settings: Settings, scratch: Path
) -> tuple[dict[str, Path], str]:
    """Files to COPY into the context, and the pip requirement for the operator."""
    files: dict[str, Path] = {}
    requirement = ""
    if target.kind is Kind.OPERATOR:
        app_dir = settings.root / target.param("app_path")
        meta = app_dir / "pyproject.toml"
        try:
            requirement = tomllib.loads(meta.read_text(encoding="utf-8"))["project"]["name"]
        except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
            raise DescriptorError(
                [Problem(target.descriptor, "app.path", f"{meta} is not a Python project: {err}")]
            ) from err
        wheels = scratch / "wheels"
        pip.wheelhouse(app_dir, wheels, target.release)
        files["wheels"] = wheels
    if target.source is PackageSource.PGDG:
        keyring = Path(target.descriptor).parent / target.param("pgdg_keyring")
        if not keyring.is_file():
            raise DescriptorError(
                [Problem(target.descriptor, "pgdg.keyring", f"file not found: {keyring}")]
            )
        files["pgdg-keyring.asc"] = keyring
    return files, requirement


def build_image(
    target: Target,
    images: dict[str, BuiltImage],
    settings: Settings,
    builder: docker.Builder,
    events: BuildEvents,
    created: str,
    rebuild: bool = False,
    published: str = "",
) -> BuiltImage:
    start = time.monotonic()
    base_ref, base_id = _base_of(target, images)
    scratch = settings.work / "scratch" / target.name
    files, requirement = _context_files(target, settings, scratch)
    events.step(target.name, "resolving package versions")
    versions = parse_simulation(docker.apt_install_simulation(base_ref, apt_packages(target)))
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / LOCK_FILE).write_text(lock_text(versions), encoding="utf-8")
    files[LOCK_FILE] = scratch / LOCK_FILE
    text = render(
        target,
        RenderOptions(base_ref, builder.buildkit, settings.source_url, requirement),
        settings.templates,
    )
    context = write_context(settings.work / "contexts" / target.name, text, files)
    fp = fingerprint(context, base_id)
    if published and published == fp and not rebuild:
        events.step(target.name, "identical to the published image: nothing to do")
        return BuiltImage(
            target=target.name,
            tag=target.local_tag,
            image_id="",
            fingerprint=fp,
            labels=((FINGERPRINT_LABEL, fp), (LOCK_LABEL, label_value(versions))),
            packages=(),
            seconds=time.monotonic() - start,
            builder=builder.kind,
            reused=True,
            published=True,
        )
    existing = docker.inspect(target.local_tag)
    if (
        not rebuild
        and existing is not None
        and docker.labels_of(existing).get(FINGERPRINT_LABEL) == fp
    ):
        events.step(target.name, "unchanged inputs, reusing the local image")
        image_id, labels, reused = str(existing["Id"]), docker.labels_of(existing), True
    else:
        image_id = docker.build(
            builder,
            context,
            target.local_tag,
            build_args={"CREATED": created, "REVISION": settings.revision, "BASE_DIGEST": base_id},
            labels={FINGERPRINT_LABEL: fp, LOCK_LABEL: label_value(versions)},
            on_line=lambda line: events.step(target.name, line),
        )
        inspected = docker.inspect(image_id) or {}
        labels, reused = docker.labels_of(inspected), False
    packages = tuple(InstalledPackage(*row) for row in docker.installed_packages(image_id))
    return BuiltImage(
        target=target.name,
        tag=target.local_tag,
        image_id=image_id,
        fingerprint=fp,
        labels=tuple(sorted(labels.items())),
        packages=packages,
        seconds=time.monotonic() - start,
        builder=builder.kind,
        reused=reused,
    )


def _build_one(
    target: Target,
    plan: Plan,
    images: dict[str, BuiltImage],
    settings: Settings,
    builder: docker.Builder,
    events: BuildEvents,
    created: str,
    force_base: bool,
    rebuild: bool,
    published: Mapping[str, str],
) -> BuiltImage:
    if target.kind is Kind.BASE:
        return build_base(
            target,
            settings.work,
            plan.base_max_age_hours,
            lambda text: events.step(target.name, text),
            force=force_base,
        )
    return build_image(
        target, images, settings, builder, events, created, rebuild, published.get(target.name, "")
    )


def build_plan(
    plan: Plan,
    settings: Settings,
    events: BuildEvents,
    *,
    force_base: bool = False,
    rebuild: bool = False,
    published: Mapping[str, str] | None = None,
    raise_on_failure: bool = True,
) -> BuildResult:
    """Build every target of plan; raises BuildError (after writing the record) on failure.

    `published` maps target names to the fingerprint of their published image: a target
    whose inputs still give that fingerprint is not built at all (`published=True`)."""
    started = time.monotonic()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    builder = docker.detect_builder(settings.builder)
    log.info("builder: %s (%s), jobs: %d", builder.kind, builder.cli, settings.jobs)
    result = BuildResult(builder=builder.kind)
    pending = list(plan.targets)
    running: dict[Future[BuiltImage], Target] = {}
    with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
        while pending or running:
            for target in list(pending):
                blocked = [
                    d for d in target.depends_on if d in result.failures or d in result.skipped
                ]
                if blocked:
                    pending.remove(target)
                    result.skipped[target.name] = f"depends on {', '.join(blocked)}, which failed"
                    events.skipped(target.name, result.skipped[target.name])
                elif (
                    all(d in result.images for d in target.depends_on)
                    and len(running) < settings.jobs
                ):
                    pending.remove(target)
                    events.started(target.name)
                    fut = pool.submit(
                        _build_one,
                        target,
                        plan,
                        dict(result.images),
                        settings,
                        builder,
                        events,
                        created,
                        force_base,
                        rebuild,
                        published or {},
                    )
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
