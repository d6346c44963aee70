"""`drydock scan IMAGE...`: scan, judge and report; the exit code is the verdict.

Exit 0 every image passed, 1 the gate failed, 2 bad input (policy, waivers, arguments),
3 a scanner crashed, timed out or printed something unparsable. The report is written
in every case, and names the scanner that failed, so a failure is never silent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from pipeline.cli import exits
from pipeline.cli.common import settings_from
from pipeline.compliance.config import load_policy
from pipeline.errors import GateFailed, InputError, Problem, ScanError
from pipeline.models.compliance import Policy, VerdictStatus
from pipeline.report.formats import render
from pipeline.scan.base import ScanSettings, VulnDbSpec
from pipeline.scan.clair_api import PSK_ENV, PSK_FILE_ENV, STATE_ENV
from pipeline.scan.resolve import release, resolve_all
from pipeline.scan.scanners import DEFAULT_SCANNERS, SCANNERS, make_scanners
from pipeline.settings import Settings
from pipeline.stages.scan import ScanConfig, ScanRun, ScanTarget, scan_images
from pipeline.stages.scan_context import attach_sources, check_trusted, own_bases, stage_for_scan
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


F = TypeVar("F", bound=Callable[..., object])


def clair_options(func: F) -> F:
    """--clair-url and --clair-psk-file, also read from DRYDOCK_CLAIR_URL / _PSK_FILE."""
    func = click.option(
        "--clair-psk-file",
        envvar=PSK_FILE_ENV,
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help=f"File holding Clair's base64 pre-shared key (or ${PSK_ENV} with the key).",
    )(func)
    return click.option(
        "--clair-url",
        envvar="DRYDOCK_CLAIR_URL",
        default="",
        help="Clair v4's API URL (default: the policy's clair.url); with one, Clair scans too.",
    )(func)


def scan_settings(
    settings: Settings,
    db: VulnDbSpec,
    ignore_unfixed: bool,
    *,
    policy: Policy | None = None,
    clair_url: str = "",
    clair_psk_file: Path | None = None,
) -> ScanSettings:
    """The scanners' settings; Clair's URL from the flag/environment, else the policy."""
    chosen = policy or Policy()
    state = os.environ.get(STATE_ENV, "")
    return ScanSettings(
        cache_dir=settings.cache / "trivy",
        vuln_db=db,
        ignore_unfixed=ignore_unfixed,
        clair_url=clair_url or chosen.clair_url,
        clair_psk=os.environ.get(PSK_ENV, ""),
        clair_psk_file=clair_psk_file,
        clair_state=Path(state) if state and (clair_url or chosen.clair_url) else None,
        max_db_age_hours=chosen.max_db_age.total_seconds() / 3600,
    )


def scanner_names(names: tuple[str, ...], settings: ScanSettings) -> tuple[str, ...]:
    """The scanners asked for, else Dockle and Trivy, plus Clair when a URL is configured."""
    if names:
        return names
    return (*DEFAULT_SCANNERS, "clair") if settings.clair_url else DEFAULT_SCANNERS


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
@click.option(
    "--waivers",
    "waivers_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Waivers file (default: scan-config/waivers.yaml).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--scanner",
    "scanners",
    multiple=True,
    type=click.Choice(sorted(SCANNERS)),
    help="Scanners to run (repeatable; default: dockle and trivy, and clair with a URL).",
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
@click.option(
    "--trusted-base",
    "trusted_base",
    multiple=True,
    metavar="REF",
    help="A base image (in the local engine) an image built elsewhere may start with "
    "(repeatable): CIS-4.2 / DISA-2.14 / 2.17 pass only when the image's layers start with "
    "a trusted base's layers. Drydock's own bases and descriptor-pinned bases always count.",
)
@click.option(
    "--dockerfile",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The Dockerfile the (one) image was built from: CIS 4.7 / 4.9 / 4.11 read it too, "
    "and judge from it when the image's history is squashed or empty.",
)
@click.option(
    "--target",
    "target_name",
    default="",
    help="The plan target the image was built from (picks its allowed ports; default: "
    "the image's io.drydock.target label).",
)
@clair_options
@exits
def scan_cmd(
    images: tuple[str, ...],
    tarballs: tuple[Path, ...],
    policy: Path | None,
    waivers_file: Path | None,
    fmt: str,
    output: Path | None,
    scanners: tuple[str, ...],
    vuln_db: str | None,
    offline: bool,
    ignore_unfixed: bool,
    jobs: int,
    flavour: str,
    no_update_check: bool,
    trusted_base: tuple[str, ...],
    dockerfile: Path | None,
    target_name: str,
    clair_url: str,
    clair_psk_file: Path | None,
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
    if dockerfile is not None and len(images) + len(tarballs) != 1:
        raise InputError(
            [Problem("--dockerfile", str(dockerfile), "give exactly one image with it")]
        )
    config = ScanConfig.in_dir(settings.scan_config, policy, waivers_file)
    today = dt.datetime.now(dt.UTC).date()
    config.check(today)  # bad policy, controls or waivers: exit 2 before anything runs
    check_trusted(trusted_base)
    plan = quiet_plan(settings)
    policy_doc = load_policy(config.policy)
    db = vuln_db_spec(vuln_db, settings, policy_doc, plan=plan, update=not offline)
    options = scan_settings(
        settings,
        db,
        ignore_unfixed,
        policy=policy_doc,
        clair_url=clair_url,
        clair_psk_file=clair_psk_file,
    )
    chosen = make_scanners(scanner_names(scanners, options), options)
    resolved = resolve_all(images, tarballs)
    try:
        text = dockerfile.read_text(encoding="utf-8") if dockerfile is not None else None
        targets = [
            dataclasses.replace(
                ScanTarget.resolved(image, flavour), dockerfile=text, target=target_name
            )
            for image in resolved
        ]
        if any(s.needs_registry for s in chosen):
            targets = stage_for_scan(targets, settings.registry)
        run = scan_images(
            targets,
            chosen,
            config,
            settings.work / "scan",
            jobs=jobs,
            today=today,
            check_updates=not no_update_check,
            trusted=(*own_bases(plan), *trusted_base),
            postgres_eol=plan.postgres_eol if plan is not None else None,
        )
    finally:
        release(resolved)
    attach_sources(run, settings)
    write_report(run, fmt, output)
    raise_for(run)


def register(main: click.Group) -> None:
    main.add_command(scan_cmd)
