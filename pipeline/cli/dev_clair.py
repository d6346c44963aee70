"""`drydock dev clair up|down|status|env`: a local Clair v4 for scans on this machine.

`up` writes the vulnerability feed into the feed front's directory (the archive-derived
feed the debian-archive Trivy DB is built from, pipeline.scan.clair_local: the one the last
run derived, else a fresh derivation for the plan's releases), starts what is not running
(pipeline.tools.clair_service: PostgreSQL, the feed front, Clair in combo mode), restarts
Clair when the feed changed so its updaters read it now, and waits until the Debian
updater has stored it. It prints the environment that points Drydock at this Clair
(`DRYDOCK_CLAIR_URL`, `DRYDOCK_CLAIR_PSK_FILE`, `DRYDOCK_CLAIR_STATE`: a run that derives
a newer feed serves it to this Clair before scanning; the key itself is never printed).
With `--updaters default` Clair fetches Debian's own data instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from pipeline.archive.feed import Feed, current_feed
from pipeline.cli import exits
from pipeline.cli.common import settings_from
from pipeline.cli.dev import dev
from pipeline.errors import ToolError
from pipeline.scan.clair_api import PSK_FILE_ENV, STATE_ENV
from pipeline.scan.clair_local import client_for, start_local
from pipeline.scan.vulndb import archive_feed
from pipeline.stages.vulndb import archive_settings, quiet_plan
from pipeline.tools import clair_service
from pipeline.tools.clair_service import ClairSettings, ClairStatus

URL_ENV = "DRYDOCK_CLAIR_URL"


def _settings(state_dir: Path | None, updaters: str, timeout: float) -> ClairSettings:
    return ClairSettings(state_dir=state_dir, updaters=updaters, start_timeout=timeout)


def local_feed() -> tuple[Feed, str]:
    """The archive-derived feed (the cached one, else derived now) and the archive URL."""
    settings = settings_from()
    archive = archive_settings(settings, quiet_plan(settings), update=True)
    feed = current_feed(archive.feed_cache)
    if feed is None or not set(archive.releases) <= {s.release for s in feed.suites}:
        feed = archive_feed(archive, {})
    return feed, archive.mirrors.archive


def _exports(status: ClairStatus) -> str:
    psk = clair_service.psk_file(status.state_dir)
    state = f" {STATE_ENV}={status.state_dir}" if status.updaters == "local" else ""
    return f"export {URL_ENV}={status.url} {PSK_FILE_ENV}={psk}{state}"


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where Clair keeps its state (default: $DRYDOCK_CACHE/clair).",
)


@dev.group("clair")
def clair() -> None:
    """A local Clair v4 (combo mode) with its PostgreSQL and vulnerability feed."""


@clair.command("up")
@state_dir_option
@click.option(
    "--updaters",
    type=click.Choice(clair_service.UPDATERS),
    default="local",
    show_default=True,
    help="local: Drydock's feed front (offline); default: Clair's own updaters (internet).",
)
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds.")
@exits
def clair_up(state_dir: Path | None, updaters: str, timeout: float) -> None:
    """Start Clair (harmless when it runs) and wait until its Debian data is stored."""
    settings = _settings(state_dir, updaters, timeout)
    start = time.monotonic()
    derived, archive = local_feed() if updaters == "local" else (None, "")
    status, op, feed = start_local(settings, derived, archive, timeout)
    click.echo(
        f"Clair ready at {status.url} in {time.monotonic() - start:.1f}s, "
        f"{op.updater} data from {op.date.isoformat(timespec='seconds')}"
        + (f" ({feed.vulnerabilities} feed entries)" if feed else ""),
        err=True,
    )
    click.echo(_exports(status))


@clair.command("down")
@state_dir_option
@click.option("--purge", is_flag=True, help="Also delete the state and the database's data.")
@exits
def clair_down(state_dir: Path | None, purge: bool) -> None:
    """Stop Clair, its feed front and its database; their data stays unless --purge."""
    clair_service.down(_settings(state_dir, "local", 60.0), purge=purge)
    click.echo("Clair stopped" + (" and its data removed" if purge else ""))


@clair.command("status")
@state_dir_option
@exits
def clair_status(state_dir: Path | None) -> None:
    """What runs, whether Clair is ready and how old its data is (exit 3 when not ready)."""
    st = clair_service.status(_settings(state_dir, "local", 60.0))
    click.echo(f"state dir: {st.state_dir}")
    parts = (("postgres", st.db_pid), ("feed front", st.feed_pid), ("clair", st.clair_pid))
    for name, pid in parts:
        click.echo(f"{name}: {'pid ' + str(pid) if pid else 'not running'}")
    click.echo(f"ready: {'yes (' + st.url + ')' if st.ready else 'no'}")
    if not st.ready:
        raise SystemExit(3)
    for name, op in sorted(client_for(st).update_operations().items()):
        click.echo(f"updater {name}: data from {op.date.isoformat(timespec='seconds')}")


@clair.command("env")
@state_dir_option
@exits
def clair_env(state_dir: Path | None) -> None:
    """Print the exports that point Drydock at the running local Clair (exit 3 if none)."""
    st = clair_service.status(_settings(state_dir, "local", 60.0))
    if not st.ready:
        raise ToolError(["clair"], None, "", "the local Clair is not running: drydock dev clair up")
    click.echo(_exports(st))


def register(_main: click.Group) -> None:
    """The commands attach to the `dev` group on import."""
