"""A private, real Clair v4 for tests and benchmarks, and the outdated-package image.

`PrivateClair` is the same Clair `drydock dev clair up` runs (pipeline.tools.clair_service:
Debian's PostgreSQL as an unprivileged user, the feed front, Clair in combo mode with PSK
auth), in a state directory of its own with ports of its own, serving the advisories a
test writes. `held_libssl3_image` builds, on Drydock's bookworm base, an image that holds
libssl3 at the bookworm point release while bookworm-security has a newer one (issue 11's
outdated-package image). Nothing is faked: a missing engine, binary or mirror fails.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.archive.mirrors import host_mirrors
from pipeline.scan.base import ScanSettings
from pipeline.scan.clair_local import client_for, wait_for_updater
from pipeline.scan.clairfeed import FeedWrite, fetch_release, write_feed
from pipeline.scan.trivydb import Advisory
from pipeline.tools import clair_service, docker
from pipeline.tools.clair_service import ClairSettings, ClairStatus

log = logging.getLogger(__name__)

HELD_IMAGE = "drydock-test/clair-held-libssl3:1"
# CVE ids the changelog of openssl 3.0.22-1~deb12u2 (bookworm-security, urgency=high)
# names: the advisories tests plant for the held libssl3 (see held_libssl3_image).
OPENSSL_CVES = (
    "CVE-2026-35189",
    "CVE-2026-54872",
    "CVE-2026-75805",
    "CVE-2026-75806",
    "CVE-2026-77696",
    "CVE-2026-84782",
)


def openssl_advisories(fixed_version: str, cves: Sequence[str] = OPENSSL_CVES) -> list[Advisory]:
    return [
        Advisory(
            id=cve,
            package="openssl",
            release="bookworm",
            fixed_version=fixed_version,
            urgency="high",
            description=f"{cve}: fixed in openssl {fixed_version} (bookworm-security)",
        )
        for cve in cves
    ]


@dataclass
class PrivateClair:
    settings: ClairSettings
    status: ClairStatus

    @property
    def psk_file(self) -> Path:
        return clair_service.psk_file(self.status.state_dir)

    def scan_settings(self, cache_dir: Path, **changes: object) -> ScanSettings:
        return ScanSettings(
            cache_dir=cache_dir,
            clair_url=self.status.url,
            clair_psk_file=self.psk_file,
            **changes,  # type: ignore[arg-type]
        )

    def serve(self, advisories: Sequence[Advisory], generated: dt.datetime) -> FeedWrite:
        """Write a feed, restart Clair so its updater reads it now, wait until stored.

        Feed times must move forward: the updater asks If-Modified-Since its last one, and
        a feed that claims to be older is answered "304 Not Modified"."""
        state_dir = self.settings.resolved_state_dir()
        releases = [fetch_release(host_mirrors().archive, "bookworm")]
        feed = write_feed(clair_service.feed_dir(state_dir), advisories, releases, generated)
        restarted = dt.datetime.now(dt.UTC)
        self.status = clair_service.up(self.settings, restart_clair=True)
        if advisories:
            wait_for_updater(client_for(self.status), restarted, 180)
        return feed

    def stop(self) -> None:
        clair_service.down(self.settings, purge=True)


def start_clair(
    state_dir: Path, advisories: Sequence[Advisory], generated: dt.datetime | None = None
) -> PrivateClair:
    """A private Clair serving `advisories` (for bookworm), started and ready."""
    settings = ClairSettings(state_dir=state_dir, updaters="local", start_timeout=180)
    clair = PrivateClair(settings, clair_service.status(settings))
    clair.serve(advisories, generated or dt.datetime.now(dt.UTC).replace(microsecond=0))
    return clair


HELD_DOCKERFILE = """\
FROM {base}
# The security suite, as Drydock's bases configure it (a debootstrap fallback lacks it).
RUN echo "deb {security} bookworm-security main" > /etc/apt/sources.list.d/security.list
# libssl3 at the version of the bookworm point release, held there: `apt-get upgrade`
# skips held packages, so only a vulnerability scan can see what it misses.
RUN set -eux; apt-get update; \\
    point="$(apt-cache madison libssl3 \\
        | awk -F ' [|] ' '$3 ~ / bookworm\\/main / {{print $2; exit}}')"; \\
    apt-get install -y --no-install-recommends --allow-downgrades "libssl3=$point"; \\
    apt-mark hold libssl3; \\
    apt-cache policy libssl3 | sed -n 's/^ *Candidate: //p' > /etc/drydock-test-libssl3-fix; \\
    rm -rf /var/lib/apt/lists/*
USER 65534
"""


@dataclass(frozen=True)
class HeldImage:
    tag: str
    installed: str  # libssl3's version in the image (the point release's)
    fixed: str  # the version bookworm-security has


def held_libssl3_image(work: Path, base: str) -> HeldImage:
    """Build (or reuse) the held-libssl3 image and read both versions out of it."""
    if docker.inspect(HELD_IMAGE) is None:
        context = work / "held-libssl3"
        context.mkdir(parents=True, exist_ok=True)
        dockerfile = HELD_DOCKERFILE.format(base=base, security=host_mirrors().security)
        (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
        docker.build(
            docker.detect_builder(),
            context,
            HELD_IMAGE,
            build_args={},
            labels={},
            on_line=lambda line: log.debug("held-libssl3: %s", line),
            timeout=900,
        )
    # `dpkg-query` as it is: installed_packages() lists "ii" only, this one is held ("hi").
    installed = docker.run_container(
        HELD_IMAGE, ["dpkg-query", "-W", "-f", "${Version}", "libssl3"], timeout=60
    ).strip()
    fixed = docker.run_container(
        HELD_IMAGE, ["cat", "/etc/drydock-test-libssl3-fix"], timeout=60
    ).strip()
    return HeldImage(HELD_IMAGE, installed, fixed)
