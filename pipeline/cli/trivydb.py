"""`drydock trivy-db ...`: make the offline Trivy vulnerability DB scans run against.

`build-local` turns an advisory file into a real trivy.db with the upstream builder and
optionally pushes it as an OCI artifact, ready for `trivy --db-repository REF`.
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import exits
from pipeline.scan.trivydb import build_local_db, fingerprint, load_advisories, push_db
from pipeline.tools.locate import cache_root


@click.group("trivy-db")
def trivy_db() -> None:
    """Build the vulnerability DB Trivy uses offline."""


@trivy_db.command("build-local")
@click.option(
    "--advisories",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML/JSON file: advisories: [{id, package, release, fixed_version, urgency}].",
)
@click.option(
    "--push",
    "push_ref",
    metavar="REF",
    help="Push the DB here, e.g. 127.0.0.1:5000/drydock/trivy-db:2.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to build (default: under $DRYDOCK_CACHE/trivy-db-build).",
)
@exits
def build_local(advisories: Path | None, push_ref: str | None, workdir: Path | None) -> None:
    """Build a Trivy DB from local advisories (none given: an empty DB) and maybe push it."""
    loaded = load_advisories(advisories) if advisories else ()
    where = workdir or cache_root() / "trivy-db-build" / fingerprint(loaded)
    where.mkdir(parents=True, exist_ok=True)
    archive = build_local_db(loaded, where)
    click.echo(f"built {archive} ({len(loaded)} advisories)")
    if push_ref:
        click.echo(f"pushed {push_db(archive, push_ref)}")


def register(main: click.Group) -> None:
    main.add_command(trivy_db)
