"""`drydock scan IMAGE...`: scan, judge and report; the exit code is the verdict.

Exit 0 every image passed, 1 the gate failed, 2 bad input (policy, waivers, arguments),
3 a scanner crashed, timed out or printed something unparsable. The report is written
in every case, and names the scanner that failed, so a failure is never silent.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from pipeline.cli import exits
from pipeline.cli.common import settings_from
from pipeline.compliance.config import load_policy
from pipeline.errors import GateFailed, InputError, Problem, ScanError
from pipeline.models.compliance import VerdictStatus
from pipeline.report.formats import render
from pipeline.scan.base import ScanSettings, VulnDbSpec
from pipeline.scan.resolve import release, resolve_all
from pipeline.scan.scanners import DEFAULT_SCANNERS, SCANNERS, make_scanners
from pipeline.settings import Settings
from pipeline.stages.scan import ScanConfig, ScanRun, ScanTarget, scan_images
from pipeline.stages.vulndb import quiet_plan, vuln_db_spec

FORMATS = ("json", "sarif", "markdown", "junit", "html")
VULN_DB_HELP = (
    "Vulnerability DB: auto (public if reachable, else the policy's mirror, else "
    "debian-archive), public, debian-archive (Drydock's feed from Debian's signed archive) "
    "or mirror:REF (a Trivy DB copy in your registry). Default: the policy's "
    "vulnerability_db.source. Environment: DRYDOCK_VULN_DB."
)

vuln_db_option = click.option(
    "--vuln-db", "vuln_db", metavar="SOURCE", envvar="DRYDOCK_VULN_DB", help=VULN_DB_HELP
)


def scan_settings(settings: Settings, db: VulnDbSpec, ignore_unfixed: bool) -> ScanSettings:
    return ScanSettings(
        cache_dir=settings.cache / "trivy", vuln_db=db, ignore_unfixed=ignore_unfixed
    )


def write_report(run: ScanRun, fmt: str, output: Path | None) -> None:
    text = render(run.report, fmt)
    if output is None:
        click.echo(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"report: {output}", err=True)


def raise_for(run: ScanRun) -> None:
    """Scanner errors first (exit 3), then the gate (exit 1)."""
    failed = [
        f"{verdict.image}: {err.source}: {err.message.splitlines()[0]}"
        for verdict in run.report.images
        for err in verdict.errors
    ]
    if failed:
        raise ScanError("scanner failure, nothing can be published:\n  " + "\n  ".join(failed))
    bad = [v.image for v in run.report.images if v.status is not VerdictStatus.PASS]
    if bad:
        raise GateFailed(f"gate failed for {len(bad)} image(s): {', '.join(bad)}")


@click.command("scan")
@click.argument("images", nargs=-1)
@click.option(
    "--input",
    "tarballs",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A `docker save` tarball to scan (repeatable).",
)
@click.option("--policy", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--scanner",
    "scanners",
    multiple=True,
    type=click.Choice(sorted(SCANNERS)),
    help="Scanners to run (repeatable; default: dockle and trivy).",
)
@vuln_db_option
@click.option(
    "--offline",
    is_flag=True,
    help="Never touch the network for the vulnerability DB: scan with the debian-archive "
    "feed already cached (its age is judged against the policy as always).",
)
@click.option("--ignore-unfixed", is_flag=True, help="Trivy: hide vulnerabilities with no fix.")
@click.option("--jobs", "-j", type=click.IntRange(1, 16), default=2, show_default=True)
@click.option("--flavour", default="", help="Flavour for the package deny list.")
@click.option("--no-update-check", is_flag=True, help="Skip the apt upgrade simulation (CIS 4.4).")
@exits
def scan_cmd(
    images: tuple[str, ...],
    tarballs: tuple[Path, ...],
    policy: Path | None,
    fmt: str,
    output: Path | None,
    scanners: tuple[str, ...],
    vuln_db: str | None,
    offline: bool,
    ignore_unfixed: bool,
    jobs: int,
    flavour: str,
    no_update_check: bool,
) -> None:
    """Scan IMAGEs and gate them.

    IMAGE is what `docker` accepts: a local name with or without a tag (`myapp` is
    `myapp:latest`), an image id, or a registry reference by tag or digest
    (`127.0.0.1:5000/drydock/postgresql@sha256:...`, pulled at that digest with the
    registry credentials Drydock uses). `--input FILE` scans a `docker save` tarball.
    The report names the digest that was scanned.
    """
    settings = settings_from(jobs=jobs)
    if not images and not tarballs:
        raise InputError([Problem("IMAGE", "-", "give at least one image or --input FILE")])
    if output is not None and output.exists() and output.is_dir():
        raise InputError([Problem("--output", str(output), "is a directory, expected a file")])
    config = ScanConfig.in_dir(settings.scan_config, policy)
    plan = quiet_plan(settings)
    db = vuln_db_spec(vuln_db, settings, load_policy(config.policy), plan=plan, update=not offline)
    chosen = make_scanners(
        scanners or DEFAULT_SCANNERS, scan_settings(settings, db, ignore_unfixed)
    )
    resolved = resolve_all(images, tarballs)
    try:
        run = scan_images(
            [ScanTarget.resolved(image, flavour) for image in resolved],
            chosen,
            config,
            settings.work / "scan",
            jobs=jobs,
            today=dt.datetime.now(dt.UTC).date(),
            check_updates=not no_update_check,
            postgres_eol=plan.postgres_eol if plan is not None else None,
        )
    finally:
        release(resolved)
    write_report(run, fmt, output)
    raise_for(run)


def register(main: click.Group) -> None:
    main.add_command(scan_cmd)
