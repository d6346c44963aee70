"""Derive the feed from the archive: verified suites in, advisories out, cached.

For each release of the matrix, the release's own suite (its point release), its -updates
and its -security suites are read through their verified InRelease. Every source package
whose -security (or -updates) version is newer than the point release's is a fix Debian
published; for the source packages installed in the images (`wanted`) the changelog of
that upload is read from one of its binary packages, and each upload it lists since the
point release becomes an advisory carrying the CVE ids it names. Indices are cached by
their hash, summaries of them by the same hash and changelogs by (source, version), so an
update whose InReleases did not change downloads three small files per release.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.archive import changelog as changelogs
from pipeline.archive.client import ArchiveClient, VerifiedRelease, atomic_write
from pipeline.archive.deb822 import parse_packages, source_versions
from pipeline.archive.debfile import changelog_from_deb
from pipeline.archive.feed import (
    Advisory,
    Feed,
    SuiteState,
    current_feed,
    feed_key,
    save_feed,
)
from pipeline.archive.mirrors import Mirrors
from pipeline.archive.version import compare_versions, newest
from pipeline.errors import ArchiveError

log = logging.getLogger(__name__)

PRUNE_AFTER = dt.timedelta(days=7)  # feeds kept for the record (the current one always)
MAX_BINARIES_TRIED = 4  # a source whose smallest binaries ship no changelog is rare
DOWNLOADS = 4  # concurrent .deb downloads


@dataclass(frozen=True)
class FeedRequest:
    """What to derive: releases, the sources the images hold, and where to read."""

    releases: tuple[str, ...]  # codenames, e.g. ("bookworm", "trixie"): must be covered
    wanted: Mapping[str, frozenset[str]]  # release -> source packages installed in images
    mirrors: Mirrors
    optional: tuple[str, ...] = ()  # releases covered when the archive has them (images
    # of releases outside the matrix); one it lacks is left out, not an error
    arch: str = "amd64"  # whose Packages index names the binaries changelogs come from


@dataclass(frozen=True)
class _Upload:
    suite: VerifiedRelease
    source: str
    version: str
    base: str  # the point release's version ("" if it does not have the source)


def _cached_json(path: Path, compute: Callable[[], Any]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        value = compute()
        atomic_write(path, json.dumps(value, sort_keys=True).encode())
        return value


def _index_key(suite: VerifiedRelease, path: str) -> str:
    for suffix in (".xz", ".gz", ".bz2", ""):
        if suite.release.has(path + suffix):
            return suite.release.file(path + suffix).sha256
    raise ArchiveError(f"{suite.suite}: its Release names no {path} index")


def _lines(data: bytes) -> Iterable[str]:
    return data.decode("utf-8", "replace").splitlines()


class _Deriver:
    def __init__(self, cache_dir: Path, client: ArchiveClient, request: FeedRequest) -> None:
        self.cache_dir, self.client, self.request = cache_dir, client, request
        self.verified: list[VerifiedRelease] = []

    def release(self, url: str, suite: str) -> VerifiedRelease:
        verified = self.client.release(url, suite)
        self.verified.append(verified)
        return verified

    def prune(self, keep_feed: str) -> None:
        """Drop cached indices and summaries no verified Release names any more, and feeds
        a week old: a cache that only grows would hold every index of every night."""
        named = {f.sha256 for v in self.verified for f in v.release.files}
        removed = self.client.prune(named)
        stale = time.time() - PRUNE_AFTER.total_seconds()
        for path in (self.cache_dir / "summaries").glob("*.json"):
            if path.name.split("-", 1)[0].removesuffix(".json") not in named:
                path.unlink(missing_ok=True)
                removed += 1
        for path in (self.cache_dir / "feeds").glob("*.json"):
            if path.stem != keep_feed and path.stat().st_mtime < stale:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("feed cache: %d stale file(s) removed", removed)

    def newest_versions(self, suite: VerifiedRelease) -> dict[str, str]:
        """Source package -> its newest version in the suite (summary cached by hash)."""
        path = "main/source/Sources"
        key = _index_key(suite, path)

        def compute() -> dict[str, str]:
            versions = source_versions(_lines(self.client.index(suite, path)))
            return {pkg: newest(vs) for pkg, vs in versions.items()}

        result: dict[str, str] = _cached_json(self.cache_dir / "summaries" / f"{key}.json", compute)
        return result

    def binaries(self, suite: VerifiedRelease) -> dict[str, list[list[Any]]]:
        """'source version' -> [[filename, size, sha256], ...] smallest first."""
        path = f"main/binary-{self.request.arch}/Packages"
        key = _index_key(suite, path)

        def compute() -> dict[str, list[list[Any]]]:
            found: dict[str, list[list[Any]]] = {}
            for b in parse_packages(_lines(self.client.index(suite, path))):
                found.setdefault(f"{b.source} {b.source_version}", []).append(
                    [b.filename, b.size, b.sha256]
                )
            return {k: sorted(v, key=lambda e: e[1]) for k, v in found.items()}

        result: dict[str, list[list[Any]]] = _cached_json(
            self.cache_dir / "summaries" / f"{key}-binaries.json", compute
        )
        return result

    def changelog(self, upload: _Upload, binaries: Mapping[str, list[list[Any]]]) -> str | None:
        """The upload's changelog (cached by source and version), or None if unobtainable."""
        path = self.cache_dir / "changelogs" / f"{upload.source}_{upload.version}.txt"
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            pass
        problems = []
        for filename, size, sha256 in binaries.get(f"{upload.source} {upload.version}", [])[
            :MAX_BINARIES_TRIED
        ]:
            try:
                data = self.client.pool_file(upload.suite.url, filename, size, sha256)
                text = changelog_from_deb(data, upload.source)
            except ArchiveError as err:
                problems.append(f"{filename}: {err}")
                continue
            atomic_write(path, text.encode())
            return text
        log.warning(
            "no changelog for %s %s (%s): its advisory has no CVE ids",
            upload.source,
            upload.version,
            "; ".join(problems) or "no binary package of it in the index",
        )
        return None


def _advisories(upload: _Upload, major: str, text: str | None) -> list[Advisory]:
    suite = upload.suite.suite
    release = upload.suite.release.release
    security = suite.endswith("-security")
    if text is None:
        # Every security upload is an advisory, even when nothing says which CVEs it fixes.
        return [Advisory(release, major, suite, upload.source, upload.version)] if security else []
    entries = changelogs.parse_changelog(text)
    uploads = changelogs.uploads_since(entries, release, upload.base)
    found = [
        Advisory(
            release, major, suite, upload.source, u.version, u.cve_ids, u.urgency, u.date, True
        )
        for u in uploads
        if u.cve_ids
    ]
    if not found and security and uploads:
        top = uploads[0]
        found.append(
            Advisory(
                release,
                major,
                suite,
                upload.source,
                upload.version,
                (),
                top.urgency,
                top.date,
                True,
            )
        )
    return found


def _wanted(cache_dir: Path, request: FeedRequest) -> dict[str, set[str]]:
    """The sources to read changelogs of: this request's, plus every earlier request's
    (kept in the cache), so the feed never shrinks between two runs of different images."""
    path = cache_dir / "wanted.json"
    try:
        known = {r: set(s) for r, s in json.loads(path.read_text(encoding="utf-8")).items()}
    except (OSError, json.JSONDecodeError, AttributeError):
        known = {}
    for release, sources in request.wanted.items():
        known.setdefault(release, set()).update(sources)
    atomic_write(
        path, json.dumps({r: sorted(s) for r, s in known.items()}, sort_keys=True).encode()
    )
    return known


def _release(
    deriver: _Deriver, release: str, wanted: set[str]
) -> tuple[list[SuiteState], list[tuple[_Upload, str, Mapping[str, list[list[Any]]] | None]]]:
    """The verified suites of one release, and the uploads newer than its point release."""
    mirrors = deriver.request.mirrors
    point = deriver.release(mirrors.archive, release)
    major = point.release.major
    base = deriver.newest_versions(point)
    suites = [_state(point, release, major)]
    work: list[tuple[_Upload, str, Mapping[str, list[list[Any]]] | None]] = []
    for url, suite_name in (
        (mirrors.security, f"{release}-security"),
        (mirrors.archive, f"{release}-updates"),
    ):
        suite = deriver.release(url, suite_name)
        suites.append(_state(suite, release, major))
        newer = {
            src: _Upload(suite, src, ver, base.get(src, ""))
            for src, ver in deriver.newest_versions(suite).items()
            if not base.get(src) or compare_versions(ver, base[src]) > 0
        }
        needs_log = {src for src in newer if src in wanted}
        binaries = deriver.binaries(suite) if needs_log else None
        work += [
            (u, major, binaries if src in needs_log else None) for src, u in sorted(newer.items())
        ]
    return suites, work


def _state(verified: VerifiedRelease, release: str, major: str) -> SuiteState:
    return SuiteState(
        verified.suite,
        release,
        major,
        verified.url,
        verified.inrelease_sha256,
        verified.release.date,
        verified.release.valid_until,
    )


def update_feed(
    cache_dir: Path,
    request: FeedRequest,
    client: ArchiveClient | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> Feed:
    """Verify every suite, derive the advisories, store and return the feed.

    Raises ArchiveError when a suite cannot be read or does not verify; the previous feed
    then stays current (`current_feed`), and its age says how stale it is.
    """
    client = client or ArchiveClient(cache_dir, now=now)
    deriver = _Deriver(cache_dir, client, request)
    wanted = _wanted(cache_dir, request)
    suites: list[SuiteState] = []
    work: list[tuple[_Upload, str, Mapping[str, list[list[Any]]] | None]] = []
    for release in (*request.releases, *request.optional):
        try:
            found, items = _release(deriver, release, wanted.get(release, set()))
        except ArchiveError as err:
            if release not in request.optional:
                raise
            log.warning("release %s left out of the feed: %s", release, err)
            continue
        suites += found
        work += items

    def derive(item: tuple[_Upload, str, Mapping[str, list[list[Any]]] | None]) -> list[Advisory]:
        upload, major, binaries = item
        text = deriver.changelog(upload, binaries) if binaries is not None else None
        return _advisories(upload, major, text)

    with ThreadPoolExecutor(max_workers=DOWNLOADS) as pool:
        derived = [a for found in pool.map(derive, work) for a in found]
    advisories = tuple(
        sorted(derived, key=lambda a: (a.release, a.source, a.suite, a.fixed_version))
    )
    suite_states = tuple(sorted(suites, key=lambda s: s.suite))
    key = feed_key(advisories, suite_states)
    read = tuple(
        sorted(f"{u.suite.release.release}/{u.source}" for u, _, b in work if b is not None)
    )
    previous = current_feed(cache_dir)
    stamp = now()
    built = previous.built_at if previous is not None and previous.key == key else stamp
    feed = Feed(key, advisories, suite_states, built, stamp, read)
    save_feed(cache_dir, feed)
    deriver.prune(key)
    log.info(
        "vulnerability feed %s: %d advisories from %d suites (%d changelogs read)",
        key,
        len(advisories),
        len(suite_states),
        len(read),
    )
    return feed
