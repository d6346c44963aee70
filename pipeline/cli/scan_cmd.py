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
from pipeline.errors import GateFailed, InputError, Problem, ScanError
from pipeline.models.compliance import VerdictStatus
from pipeline.report.formats import render
from pipeline.scan.base import ScanSettings
from pipeline.scan.resolve import release, resolve_all
from pipeline.scan.scanners import DEFAULT_SCANNERS, SCANNERS, make_scanners
from pipeline.scan.trivydb import ensure_local_db, load_advisories
from pipeline.settings import Settings
from pipeline.stages.scan import ScanConfig, ScanRun, ScanTarget, scan_images

FORMATS = ("json", "sarif", "markdown", "junit", "html")


def trivy_db_reference(choice: str, settings: Settings) -> str:
    """'local' builds (once) and serves a DB from scan-config/trivy-advisories.yaml;
    'public' leaves Trivy's default; anything else is a mirror reference."""
    if choice == "public":
        return ""
    if choice == "local":
        source = settings.scan_config / "trivy-advisories.yaml"
        advisories = load_advisories(source) if source.is_file() else ()
        return ensure_local_db(settings, advisories)
    return choice


def scan_settings(settings: Settings, db: str, ignore_unfixed: bool) -> ScanSettings:
    return ScanSettings(
        cache_dir=settings.cache / "trivy",
        db_repository=trivy_db_reference(db, settings),
        ignore_unfixed=ignore_unfixed,
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
@click.option(
    "--trivy-db",
    default="local",
    show_default=True,
    help="'local' (built from scan-config/trivy-advisories.yaml, served by the local "
    "registry), 'public' (Trivy's default), or a mirror reference.",
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
    trivy_db: str,
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
    chosen = make_scanners(
        scanners or DEFAULT_SCANNERS, scan_settings(settings, trivy_db, ignore_unfixed)
    )
    config = ScanConfig.in_dir(settings.scan_config, policy)
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
        )
    finally:
        release(resolved)
    write_report(run, fmt, output)
    raise_for(run)


def register(main: click.Group) -> None:
    main.add_command(scan_cmd)
