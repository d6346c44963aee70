"""`drydock run`: the whole pipeline, as the nightly and `make build-images` run it."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from pipeline.build.events import BuildEvents
from pipeline.catalog.generate import CatalogSettings
from pipeline.cli import exits, is_interactive
from pipeline.cli.build_cmds import parse_shard
from pipeline.cli.common import settings_from
from pipeline.cli.progress import PlainEvents, RichEvents
from pipeline.cli.scan_cmd import clair_options, scan_settings, scanner_names, vuln_db_option
from pipeline.compliance.config import load_policy
from pipeline.scan.clair_local import LOCAL_URL
from pipeline.scan.scanners import SCANNERS, make_scanners
from pipeline.stages.promote import promote_staged
from pipeline.stages.run import RunOptions, run_pipeline
from pipeline.stages.vulndb import vuln_db_spec
from pipeline.tools.provision import RUN_TOOLS, Prefetch


@click.command("run")
@click.argument("targets", nargs=-1)
@click.option("--jobs", "-j", type=click.IntRange(1, 32), default=2, show_default=True)
@click.option(
    "--builder", type=click.Choice(["auto", "buildx", "buildkit", "legacy"]), default="auto"
)
@click.option(
    "--registry",
    envvar="DRYDOCK_REGISTRY",
    help="Where to publish: host[:port][/namespace], e.g. ghcr.io/acme "
    "(default: 127.0.0.1:5000; env DRYDOCK_REGISTRY).",
)
@click.option("--shard", "shard_spec", help="Run shard I/N of the matrix (CI fan-out).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("out"),
    show_default=True,
    help="Where reports, catalogs, the run record and the summary go.",
)
@vuln_db_option
@click.option("--scanner", "scanners", multiple=True, type=click.Choice(sorted(SCANNERS)))
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--api-group", default="postgresql.cnpg.io", show_default=True)
@click.option("--no-sign", is_flag=True, help="Do not sign promoted images.")
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--keyless",
    is_flag=True,
    envvar="DRYDOCK_KEYLESS",
    help="Sign with the CI's OIDC identity (Fulcio, Rekor) instead of a key pair.",
)
@click.option("--no-update-check", is_flag=True, help="Skip the apt upgrade simulation (CIS 4.4).")
@click.option(
    "--stage-only",
    is_flag=True,
    help="Stage and verify only (CI shards); `drydock promote` promotes after every shard.",
)
@click.option(
    "--no-regate",
    is_flag=True,
    help="Do not gate the published images of unchanged targets again against today's "
    "vulnerability DB (by default a fixable finding rebuilds them).",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="Rebuild and republish the chosen targets even when their inputs are unchanged "
    "(a new digest that rolls every Cluster using it). Bases are reused.",
)
@clair_options
@exits
def run_cmd(
    targets: tuple[str, ...],
    jobs: int,
    builder: str,
    registry: str | None,
    shard_spec: str | None,
    out_dir: Path,
    vuln_db: str | None,
    scanners: tuple[str, ...],
    kubeconfig: Path | None,
    api_group: str,
    no_sign: bool,
    signing_key: Path | None,
    keyless: bool,
    no_update_check: bool,
    stage_only: bool,
    no_regate: bool,
    rebuild: bool,
    clair_url: str,
    clair_psk_file: Path | None,
) -> None:
    """Plan, build what changed, stage, scan, gate, publish, sign and write (apply) catalogs."""
    settings = settings_from(jobs=jobs, builder=builder, registry=registry)
    shard_of = parse_shard(shard_spec) if shard_spec else None
    policy = load_policy(settings.scan_config / "policy.yaml")
    db = vuln_db_spec(vuln_db, settings, policy)
    scanning = scan_settings(
        settings, db, False, policy=policy, clair_url=clair_url, clair_psk_file=clair_psk_file
    )
    # The tools of the later steps compile while the bases and images build (the local
    # Clair's too: its scan step starts it).
    tools = RUN_TOOLS if not no_sign else RUN_TOOLS[:-1]
    Prefetch((*tools, "clair") if scanning.clair_url == LOCAL_URL else tools).start()
    chosen = make_scanners(scanner_names(scanners, scanning), scanning)
    options = RunOptions(
        out_dir=out_dir,
        scanners=chosen,
        targets=targets,
        shard=shard_of,
        kubeconfig=kubeconfig,
        catalog=CatalogSettings(api_group=api_group),
        sign=not no_sign,
        signing_key=signing_key,
        keyless=keyless,
        check_updates=not no_update_check,
        stage_only=stage_only,
        rebuild=rebuild,
        regate=not no_regate,
    )
    with contextlib.ExitStack() as stack:
        events: BuildEvents = PlainEvents()
        if is_interactive():
            events = stack.enter_context(RichEvents(len(targets) or 10))
        outcome = run_pipeline(settings, options, events)
    click.echo(outcome.summary)
    click.echo(f"record: {outcome.record}", err=True)
    if outcome.exit_code:
        for line in outcome.errors:
            click.echo(f"drydock: error: {line}", err=True)
        for name in outcome.gate_failed:
            click.echo(f"drydock: gate failed: {name}", err=True)
        sys.exit(outcome.exit_code)


@click.command("promote")
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
)
@click.option(
    "--registry",
    envvar="DRYDOCK_REGISTRY",
    help="host[:port][/namespace] (default: 127.0.0.1:5000; env DRYDOCK_REGISTRY).",
)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("out")
)
@click.option("--kubeconfig", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--api-group", default="postgresql.cnpg.io", show_default=True)
@click.option("--no-sign", is_flag=True)
@click.option("--signing-key", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--keyless",
    is_flag=True,
    envvar="DRYDOCK_KEYLESS",
    help="Sign with the CI's OIDC identity (Fulcio, Rekor) instead of a key pair.",
)
@exits
def promote_cmd(
    folders: tuple[Path, ...],
    registry: str | None,
    out_dir: Path,
    kubeconfig: Path | None,
    api_group: str,
    no_sign: bool,
    signing_key: Path | None,
    keyless: bool,
) -> None:
    """Promote the gated images `drydock run --stage-only` left in FOLDERS, then catalogs."""
    settings = settings_from(registry=registry)
    outcome = promote_staged(
        settings,
        list(folders),
        out_dir,
        sign=not no_sign,
        signing_key=signing_key,
        keyless=keyless,
        kubeconfig=kubeconfig,
        catalog=CatalogSettings(api_group=api_group),
    )
    for image in outcome.promoted:
        click.echo(f"promoted {image.reference}")
    for line in outcome.skipped:
        click.echo(f"not promoted: {line}")
    for item in outcome.applied:
        click.echo(f"catalog {item['name']}: {item['action']}")
    if outcome.errors:
        for line in outcome.errors:
            click.echo(f"drydock: error: {line}", err=True)
        sys.exit(3)


def register(main: click.Group) -> None:
    main.add_command(run_cmd)
    main.add_command(promote_cmd)
