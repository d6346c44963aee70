"""Keep the local Clair on the same vulnerability data as the run's Trivy DB.

Drydock's local Clair (`drydock dev clair up`, pipeline.tools.clair_service) reads its
Debian data from a feed front Drydock writes. Both scanners must read one set of facts,
or their disagreements mean nothing: so the feed front is written from the same
archive-derived feed the debian-archive Trivy DB is built from, through the same
conversion (`vulndb.feed_advisories`: one advisory per CVE id of an upload, a synthetic
`DSU-...` id for an upload whose changelog names none). When a run derives a new feed,
`sync` rewrites the front, restarts Clair (its updaters run at start) and waits until
its Debian updater has stored it, before any image is scanned.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.archive.feed import Feed
from pipeline.errors import ScanError, ToolError
from pipeline.scan.clair_api import ClairAuth, ClairClient, UpdateOperation
from pipeline.scan.clairfeed import FeedRelease, FeedWrite, fetch_release, read_release, write_feed
from pipeline.scan.vulndb import feed_advisories
from pipeline.tools import clair_service
from pipeline.tools.clair_service import ClairSettings, ClairStatus

log = logging.getLogger(__name__)

DEBIAN_UPDATER = "debian/updater"
# `--clair-url local` / DRYDOCK_CLAIR_URL=local: the Clair Drydock runs on this machine,
# started (and built, on first use) by the scan step that first needs it (`start_local`).
LOCAL_URL = "local"


def client_for(status: ClairStatus, timeout: float = 60.0) -> ClairClient:
    """A client of a local Clair, with the key its state dir holds."""
    auth = ClairAuth.load(psk_file=clair_service.psk_file(status.state_dir))
    return ClairClient(status.url, timeout=timeout, auth=auth)


def wait_for_updater(
    client: ClairClient, since: dt.datetime | None, timeout: float
) -> UpdateOperation:
    """Poll until the Debian updater stored data (at or after `since`, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            op = client.update_operations().get(DEBIAN_UPDATER)
        except ScanError:
            op = None
        if op is not None and (since is None or op.date >= since - dt.timedelta(seconds=1)):
            return op
        if time.monotonic() > deadline:
            raise ToolError(
                ["clair"], None, "", f"{DEBIAN_UPDATER} stored no new data in {timeout:.0f}s"
            )
        time.sleep(1.0)


def releases_for(archive: str, codenames: Sequence[str], front: Path) -> list[FeedRelease]:
    """Each release's Release file from the archive; offline, the copy the front holds."""
    found = []
    for codename in codenames:
        try:
            found.append(fetch_release(archive, codename))
        except ToolError:
            kept = read_release(front, codename)
            if kept is None:
                raise
            log.warning("%s: archive unreachable, serving the Release already held", codename)
            found.append(kept)
    return found


def write_front(state_dir: Path, feed: Feed, archive: str) -> FeedWrite:
    """The feed front's files from the archive-derived feed (its time: when the suites
    were last verified current upstream, so Clair's data age is the feed's age)."""
    front = clair_service.feed_dir(state_dir)
    releases = releases_for(archive, sorted({s.release for s in feed.suites}), front)
    return write_feed(front, feed_advisories(feed), releases, feed.verified_at)


def start_local(
    settings: ClairSettings, feed: Feed | None, archive: str, timeout: float = 300.0
) -> tuple[ClairStatus, UpdateOperation, FeedWrite | None]:
    """Start the local Clair (what is not running; a no-op when all is), serving `feed`
    when given (restarted when the feed changed), and wait until its Debian updater has
    stored data: what `drydock dev clair up` and a run with `--clair-url local` do."""
    written = write_front(settings.resolved_state_dir(), feed, archive) if feed else None
    status = clair_service.up(settings, restart_clair=bool(written and written.changed))
    op = wait_for_updater(client_for(status), written.generated if written else None, timeout)
    return status, op, written


def sync(settings: ClairSettings, feed: Feed, archive: str, timeout: float = 300.0) -> FeedWrite:
    """Serve `feed` to the local Clair and wait until it stored it (restart when new)."""
    written = write_front(settings.resolved_state_dir(), feed, archive)
    if not written.changed:
        return written
    restarted = dt.datetime.now(dt.UTC)
    status = clair_service.up(settings, restart_clair=True)
    wait_for_updater(client_for(status), restarted, timeout)
    log.info("local Clair now serves feed %s (%d entries)", feed.key, written.vulnerabilities)
    return written
