"""`drydock plan` and `drydock build`: what would be built, and building it."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import click

from pipeline.build.events import BuildEvents
from pipeline.build.executor import build_plan
from pipeline.cli import exits, is_interactive
from pipeline.cli.common import settings_from
from pipeline.cli.progress import PlainEvents, RichEvents
from pipeline.descriptors.load import load_plan
from pipeline.errors import InputError, Problem, ToolError
from pipeline.models.targets import Plan
from pipeline.tools import docker


def local_sizes(plan: Plan) -> dict[str, int]:
    """Each target's size in the local engine (as `docker images` counts it), for the
    targets built here; an engine that does not answer gives no sizes, not an error."""
    sizes: dict[str, int] = {}
    try:
        for t in plan:
            found = docker.inspect(t.local_tag)
            if found is not None:
                sizes[t.name] = int(found.get("Size", 0))
    except ToolError:
        return {}
    return sizes


def mb(size: int | None) -> str:
    return f"{size / 1_000_000:.0f} MB" if size else "-"


def plan_rows(plan: Plan, sizes: dict[str, int] | None = None) -> list[dict[str, object]]:
    return [
        {
            "name": t.name,
            "kind": str(t.kind),
            "tag": t.local_tag,
            "release": t.release,
            "major": t.major,
            "flavour": t.flavour,
            "source": str(t.source) if t.source else None,
            "depends_on": list(t.depends_on),
            "excludes": list(t.excludes),
            "size_bytes": (sizes or {}).get(t.name),
        }
        for t in plan
    ]


def retired_rows(plan: Plan) -> list[dict[str, object]]:
    return [
        {"name": r.name, "reason": r.reason, "since": r.since.isoformat()} for r in plan.retired
    ]


def unknown_targets(plan: Plan, names: tuple[str, ...]) -> list[Problem]:
    """A problem per name that is not a target: retired ones say why and since when."""
    return [
        Problem("TARGET", name, f"retired: {plan.retired_reason(name)}")
        if plan.retired_reason(name)
        else Problem("TARGET", name, "no such target (see `drydock plan`)")
        for name in names
        if name not in plan.names()
    ]


def parse_shard(spec: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 1 <= I <= N; bad input is an InputError (exit 2)."""
    m = re.fullmatch(r"(\d+)/(\d+)", spec)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise InputError([Problem("--shard", "value", f"'{spec}' is not I/N with 1 <= I <= N")])
    return int(m.group(1)), int(m.group(2))


def shard(plan: Plan, spec: str) -> Plan:
    """Shard I of N (1-based, round-robin over the non-base targets), plus their bases."""
    return plan.shard(*parse_shard(spec))


def load(images: Path | None) -> Plan:
    s = settings_from(images=images)
    return load_plan(s.descriptors, s.templates)


images_option = click.option(
    "--images",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Folder of image descriptors (default: images/).",
)


@click.command("plan")
@click.argument("targets", nargs=-1)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "github-matrix"]), default="table"
)
@click.option(
    "--shards", type=click.IntRange(1, 64), default=2, help="Shards in the github-matrix."
)
@images_option
@exits
def plan_cmd(targets: tuple[str, ...], fmt: str, shards: int, images: Path | None) -> None:
    """Show the build matrix the descriptors describe (only TARGETs and their bases if given)."""
    plan = load(images)
    if targets:
        unknown = [t for t in targets if t not in plan.names()]
        if unknown:
            raise InputError(f"unknown target(s): {', '.join(unknown)} (see `drydock plan`)")
        plan = plan.select(targets)
    if fmt == "json":
        doc = {"targets": plan_rows(plan, local_sizes(plan)), "retired": retired_rows(plan)}
        click.echo(json.dumps(doc, indent=2))
    elif fmt == "github-matrix":
        n = min(shards, max(1, len(plan.families())))
        matrix = {"include": [{"shard": f"{i}/{n}", "index": i} for i in range(1, n + 1)]}
        click.echo(json.dumps(matrix, separators=(",", ":")))
    else:
        sizes = local_sizes(plan)
        click.echo(f"{'TARGET':40} {'KIND':9} {'RELEASE':9} {'SOURCE':7} {'SIZE':>7}  TAG")
        for t in plan:
            click.echo(
                f"{t.name:40} {t.kind!s:9} {t.release:9} {t.source or '-'!s:7} "
                f"{mb(sizes.get(t.name)):>7}  {t.local_tag}"
            )
        click.echo("SIZE: the image in the local engine, as `docker images` counts it.")
        if plan.retired:
            click.echo("\nRetired (past end of life, not built):")
            for r in plan.retired:
                click.echo(f"{r.name:40} since {r.since.isoformat()}: {r.reason}")


@click.command("build")
@click.argument("targets", nargs=-1)
@click.option("--jobs", "-j", type=click.IntRange(1, 32), default=2, show_default=True)
@click.option(
    "--builder", type=click.Choice(["auto", "buildx", "buildkit", "legacy"]), default="auto"
)
@click.option("--shard", "shard_spec", help="Build shard I/N of the matrix (CI fan-out).")
@click.option("--rebuild-bases", is_flag=True, help="Rebuild base images even when fresh.")
@images_option
@exits
def build_cmd(
    targets: tuple[str, ...],
    jobs: int,
    builder: str,
    shard_spec: str | None,
    rebuild_bases: bool,
    images: Path | None,
) -> None:
    """Build TARGETs (default: every target) and the bases they need."""
    settings = settings_from(jobs=jobs, builder=builder, images=images)
    plan = load_plan(settings.descriptors, settings.templates)
    unknown = unknown_targets(plan, targets)
    if unknown:
        raise InputError(unknown)
    if targets:
        plan = plan.select(targets)
    if shard_spec:
        plan = shard(plan, shard_spec)
    with contextlib.ExitStack() as stack:
        events: BuildEvents = PlainEvents()
        if is_interactive():
            events = stack.enter_context(RichEvents(len(plan.targets)))
        result = build_plan(plan, settings, events, force_base=rebuild_bases)
    for image in result.images.values():
        state = "reused" if image.reused else "built"
        click.echo(f"{image.target:40} {state:7} {image.image_id[:19]}  {image.tag}")
    click.echo(f"record: {result.record}")


def register(main: click.Group) -> None:
    main.add_command(plan_cmd)
    main.add_command(build_cmd)
