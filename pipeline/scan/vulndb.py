"""The vulnerability DB Trivy scans with, in every mode, and what it holds.

Three sources (`--vuln-db` or the policy's `vulnerability_db.source`):
  * `public`          Trivy's public DB, fetched by Trivy from its default registry;
  * `mirror:REF`      an OCI copy of that DB in the user's registry (air-gapped sites);
  * `debian-archive`  Drydock's own feed (`pipeline.archive`), turned into Debian
                      security-tracker files and built with the upstream trivy-db builder.
`auto` picks public when its registry answers, else the policy's mirror, else
debian-archive. Whatever the source, the DB's build time and its advisory count per
platform are read from the DB files themselves (metadata.json and the bbolt file), so a
report states what the scan could see, not what the builder meant to put in.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from pipeline.archive.client import ArchiveClient
from pipeline.archive.feed import Feed, current_feed
from pipeline.archive.update import FeedRequest, update_feed
from pipeline.archive.version import compare_versions
from pipeline.errors import ArchiveError, InputError, Problem, ScanError
from pipeline.models.provenance import VulnDbInfo, VulnDbSource
from pipeline.scan import trivydb
from pipeline.scan.base import ArchiveFeedSettings
from pipeline.scan.boltdb import platform_counts

log = logging.getLogger(__name__)

AUTO = "auto"
PUBLIC_PROBE = "https://mirror.gcr.io/v2/"  # where Trivy >= 0.56 fetches its DB first
PROBE_TIMEOUT = 5.0
# Changelog urgency -> the tracker urgency the builder maps to a severity.
URGENCY = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "emergency": "high",
    "critical": "high",
}


@dataclass(frozen=True)
class VulnDbChoice:
    """A parsed `--vuln-db` value."""

    source: str  # "auto" or a VulnDbSource value
    reference: str = ""  # mirror: the OCI reference of the DB


def parse_choice(text: str, mirror: str = "", where: str = "--vuln-db") -> VulnDbChoice:
    """'auto' | 'public' | 'debian-archive' | 'mirror' (uses `mirror`) | 'mirror:REF'."""
    value = text.strip()
    name, _, ref = value.partition(":")
    if name == VulnDbSource.MIRROR:
        ref = ref or mirror
        if not ref:
            raise InputError([Problem(where, value, "mirror needs a reference: mirror:REF")])
        return VulnDbChoice(VulnDbSource.MIRROR, ref)
    if value in (AUTO, VulnDbSource.PUBLIC, VulnDbSource.DEBIAN_ARCHIVE):
        return VulnDbChoice(value)
    known = "auto, public, debian-archive, mirror:REF"
    raise InputError([Problem(where, value, f"unknown vulnerability DB source (known: {known})")])


def public_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Does the registry Trivy fetches its public DB from answer at all?"""
    try:
        requests.get(PUBLIC_PROBE, timeout=timeout)
    except requests.RequestException:
        return False
    return True


def resolve_auto(choice: VulnDbChoice, mirror: str = "") -> VulnDbChoice:
    """`auto` -> public when reachable, else the configured mirror, else debian-archive."""
    if choice.source != AUTO:
        return choice
    if public_reachable():
        return VulnDbChoice(VulnDbSource.PUBLIC)
    if mirror:
        log.info("Trivy's public DB is unreachable: using the mirror %s", mirror)
        return VulnDbChoice(VulnDbSource.MIRROR, mirror)
    log.info("Trivy's public DB is unreachable and no mirror is set: using debian-archive")
    return VulnDbChoice(VulnDbSource.DEBIAN_ARCHIVE)


def synthetic_id(release: str, source: str, version: str) -> str:
    """The id of a security upload whose changelog names no CVE (Debian Security Upload)."""
    return f"DSU-{release}-{source}-{version}"


def feed_advisories(feed: Feed) -> tuple[trivydb.Advisory, ...]:
    """The feed as tracker advisories: one per (release, source, CVE id), the newest
    fixed version winning when two uploads name the same CVE (pure)."""
    chosen: dict[tuple[str, str, str], trivydb.Advisory] = {}
    for a in feed.advisories:
        when = f", {a.published:%Y-%m-%d}" if a.published else ""
        description = f"Fixed in {a.source} {a.fixed_version} ({a.suite}{when})"
        urgency = URGENCY.get(a.urgency, "not yet assigned")
        for vuln_id in a.cve_ids or (synthetic_id(a.release, a.source, a.fixed_version),):
            key = (a.release, a.source, vuln_id)
            old = chosen.get(key)
            if old is not None and compare_versions(old.fixed_version, a.fixed_version) >= 0:
                continue
            chosen[key] = trivydb.Advisory(
                id=vuln_id,
                package=a.source,
                release=a.release,
                fixed_version=a.fixed_version,
                urgency=urgency,
                description=description,
            )
    return tuple(chosen[k] for k in sorted(chosen))


def archive_db(feed: Feed, root: Path) -> Path:
    """The directory holding trivy.db + metadata.json built from `feed` (built once per
    feed key with the upstream builder, in a scratch directory, then renamed in place)."""
    final = root / feed.key
    if (final / "trivy.db").is_file() and (final / "metadata.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{feed.key}-", dir=root))
    try:
        out = trivydb.build_db_files(feed_advisories(feed), scratch, feed.releases)
        (out / "feed.json").write_text(
            json.dumps({"key": feed.key, "advisories": len(feed.advisories)}), encoding="utf-8"
        )
        try:
            out.rename(final)
        except OSError:
            if not (final / "trivy.db").is_file():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("built the Trivy DB of feed %s (%d advisories)", feed.key, len(feed.advisories))
    _prune_dbs(root, keep=final)
    return final


def _prune_dbs(root: Path, keep: Path, days: float = 7.0) -> None:
    """Remove DBs of feeds older than `days` (a DB a running scan copied is its own copy)."""
    stale = time.time() - days * 86400
    for old in root.iterdir():
        if old != keep and old.is_dir() and old.stat().st_mtime < stale:
            shutil.rmtree(old, ignore_errors=True)


def install_db(db_dir: Path, trivy_cache: Path) -> None:
    """Put a built DB where Trivy reads it (<cache>/db/), for scans with --skip-db-update."""
    target = trivy_cache / "db"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("trivy.db", "metadata.json"):
        tmp = target / f".{name}.tmp"
        shutil.copyfile(db_dir / name, tmp)
        tmp.replace(target / name)


def _metadata_time(db_dir: Path) -> dt.datetime | None:
    try:
        doc = json.loads((db_dir / "metadata.json").read_text(encoding="utf-8"))
        text = str(doc.get("UpdatedAt", ""))
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise ScanError(f"trivy: unreadable DB metadata in {db_dir}: {err}") from err
    if not text:
        return None
    try:
        # Go writes nanoseconds ("2026-12-02T08:41:16.123456789Z"); keep microseconds.
        head, _, frac = text.rstrip("Z").partition(".")
        return dt.datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
    except ValueError:
        return None


def db_info(
    db_dir: Path,
    source: str,
    reference: str,
    *,
    current_at: dt.datetime | None = None,
    detail: Sequence[str] = (),
) -> VulnDbInfo:
    """What the DB in db_dir (Trivy's <cache>/db) holds, read from its own files."""
    if not (db_dir / "trivy.db").is_file():
        raise ScanError(f"trivy: no vulnerability DB in {db_dir}")
    built = _metadata_time(db_dir)
    counts = platform_counts(db_dir / "trivy.db")
    return VulnDbInfo(
        source=source,
        reference=reference,
        built_at=built,
        current_at=current_at or built,
        advisories=sum(counts.values()),
        platforms=tuple(sorted(counts.items())),
        detail=tuple(detail),
    )


def feed_detail(feed: Feed) -> tuple[str, ...]:
    """One line per suite the feed was derived from, for the reports."""
    return tuple(
        f"{s.suite}: Release of {s.date:%Y-%m-%d %H:%M} UTC ({s.url})" for s in feed.suites
    )


def archive_feed(settings: ArchiveFeedSettings, inventory: Mapping[str, frozenset[str]]) -> Feed:
    """Today's feed: updated from the archive when it answers and verifies, else the one
    last cached (its age then tells how stale it is; the gate judges that age)."""
    if settings.update:
        extra = tuple(sorted(set(inventory) - set(settings.releases)))
        request = FeedRequest(settings.releases, dict(inventory), settings.mirrors, extra)
        client = ArchiveClient(settings.feed_cache, keyring=settings.keyring)
        try:
            return update_feed(settings.feed_cache, request, client)
        except ArchiveError as err:
            log.warning("debian-archive feed not updated (%s): using the cached one", err)
    feed = current_feed(settings.feed_cache)
    if feed is None:
        raise ScanError(
            "debian-archive: the Debian archive could not be read and no feed is cached "
            f"in {settings.feed_cache}: nothing to scan against"
        )
    return feed
