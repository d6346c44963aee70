"""Resolve the run's vulnerability DB choice into the settings the scanners use.

`--vuln-db` (or the policy's `vulnerability_db.source`) says where the DB comes from;
`auto` is decided here, once per run (public when its registry answers, else the
policy's mirror, else the Debian-archive feed). The archive feed covers the Debian
releases the plan builds on, read from the mirror the base descriptor or the host's apt
sources name, so the DB the operands are gated with is derived from the same archive they
were built from.
"""

from __future__ import annotations

import logging

from pipeline.archive.feed import feed_dir
from pipeline.archive.mirrors import resolve
from pipeline.descriptors.load import load_plan
from pipeline.errors import DescriptorError
from pipeline.models.compliance import Policy
from pipeline.models.provenance import VulnDbSource
from pipeline.models.targets import Kind, Plan
from pipeline.scan.base import ArchiveFeedSettings, VulnDbSpec
from pipeline.scan.vulndb import AUTO, VulnDbChoice, parse_choice, resolve_auto
from pipeline.settings import Settings

log = logging.getLogger(__name__)


def quiet_plan(settings: Settings) -> Plan | None:
    """The plan, for its releases, mirror and end-of-life dates; None when the descriptors
    are broken (a scan of an arbitrary image does not need them)."""
    try:
        return load_plan(settings.descriptors, settings.templates)
    except DescriptorError as err:
        log.warning("descriptors unreadable (%s): the feed covers only the images' releases", err)
        return None


def archive_settings(settings: Settings, plan: Plan | None, *, update: bool) -> ArchiveFeedSettings:
    """Where the Debian-archive feed is read from (the plan's mirror) and kept."""
    bases = [t for t in plan if t.kind is Kind.BASE] if plan is not None else []
    mirror = plan.mirror if plan is not None else ""
    security = bases[0].param("security_mirror") if bases else ""
    releases = plan.releases if plan is not None else ()
    return ArchiveFeedSettings(
        feed_cache=feed_dir(settings.cache),
        mirrors=resolve(mirror, security),
        releases=releases,
        update=update,
    )


def vuln_db_spec(
    choice: str | None,
    settings: Settings,
    policy: Policy,
    *,
    plan: Plan | None = None,
    update: bool = True,
) -> VulnDbSpec:
    """The DB the scanners use: `choice` (the --vuln-db value) or the policy's source.
    `update` False keeps the archive feed off the network (scan with the cached feed)."""
    parsed = parse_choice(
        choice or policy.vuln_db_source,
        policy.vuln_db_mirror,
        "--vuln-db" if choice else "policy: vulnerability_db.source",
    )
    if parsed.source == AUTO and not update:
        parsed = VulnDbChoice(VulnDbSource.DEBIAN_ARCHIVE)  # offline: nothing else answers
    resolved = resolve_auto(parsed, policy.vuln_db_mirror)
    log.info("vulnerability DB: %s %s", resolved.source, resolved.reference)
    if resolved.source != VulnDbSource.DEBIAN_ARCHIVE:
        return VulnDbSpec(resolved.source, resolved.reference)
    plan = plan if plan is not None else quiet_plan(settings)
    return VulnDbSpec(
        VulnDbSource.DEBIAN_ARCHIVE, archive=archive_settings(settings, plan, update=update)
    )
