"""Drydock's vulnerability feed derived from Debian's signed archive: its data and cache.

Stable API (issue 12's Clair integration and issue 15's nightly build on it):

    Advisory       frozen: one upload to a release's -security (or -updates) suite that
                   fixes something: release codename, Debian major, suite, source package,
                   fixed version, the CVE ids its changelog names, the changelog urgency
                   and date (`changelog` False: the changelog was not read, no CVE ids)
    SuiteState     frozen: one verified suite (its InRelease hash, Date, Valid-Until)
    Feed           frozen: the advisories, the suites they were derived from, when the
                   feed was built and when its suites were last verified unchanged
    current_feed(cache_dir) -> Feed | None
                   the feed the last successful update left, read from the cache; no
                   network. `cache_dir` is `feed_dir(settings.cache)`.

What it covers: fixes Debian published in the security (and -updates) suites of each
release, newer than the release's current point release, for the source packages the
images hold (CVE ids read from the upload's changelog), and for every other source with a
security upload an advisory without CVE ids. What it cannot cover: vulnerabilities Debian
has not fixed yet (no upload), software not installed from Debian packages, and fixes
already folded into the point release (an image older than the point release is caught by
the pending-updates check, not by this feed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.archive.client import atomic_write
from pipeline.errors import ArchiveError

FEED_FORMAT = 1
SECURITY = "security"
UPDATES = "updates"


def feed_dir(cache: Path) -> Path:
    """Where the feed lives under Drydock's cache ($DRYDOCK_CACHE)."""
    return cache / "vulnfeed"


@dataclass(frozen=True)
class Advisory:
    """An upload to a Debian release that fixes vulnerabilities in one source package."""

    release: str  # "bookworm"
    major: str  # "12"
    suite: str  # "bookworm-security" or "bookworm-updates"
    source: str  # source package name, as dpkg's ${source:Package} and Trivy use it
    fixed_version: str  # the first version that has the fix
    cve_ids: tuple[str, ...] = ()  # from the upload's changelog entry
    urgency: str = ""  # the changelog's urgency ("low", "medium", "high", ...); "" unknown
    published: dt.datetime | None = None  # the changelog entry's date
    changelog: bool = False  # the changelog was read (False: no CVE ids known)

    @property
    def kind(self) -> str:
        """ "security" or "updates": the suite the fix was published in."""
        return SECURITY if self.suite.endswith("-security") else UPDATES


@dataclass(frozen=True)
class SuiteState:
    """A suite the feed was derived from, as its verified InRelease described it."""

    suite: str  # "bookworm-security"
    release: str  # "bookworm"
    major: str  # "12"
    url: str  # archive root
    inrelease_sha256: str
    date: dt.datetime  # the Release's Date: when Debian last published the suite
    valid_until: dt.datetime | None = None


@dataclass(frozen=True)
class Feed:
    """The advisories of one derivation, and how current they are."""

    key: str  # hash of the advisories and suites: names the Trivy DB built from it
    advisories: tuple[Advisory, ...]
    suites: tuple[SuiteState, ...]
    built_at: dt.datetime  # when these advisories were derived
    verified_at: dt.datetime  # when the suites were last verified unchanged upstream
    changelogs: tuple[str, ...] = field(default=())  # "bookworm/openssl" pairs read

    @property
    def releases(self) -> dict[str, str]:
        """Codename -> Debian major of every release the feed covers."""
        return {s.release: s.major for s in self.suites}

    def count(self, major: str) -> int:
        """Advisories for one Debian major ("12")."""
        return sum(1 for a in self.advisories if a.major == major)


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def feed_key(advisories: tuple[Advisory, ...], suites: tuple[SuiteState, ...]) -> str:
    """Identifies the content: equal advisories over the same releases -> equal key."""
    doc = {
        "format": FEED_FORMAT,
        "releases": sorted({(s.release, s.major) for s in suites}),
        "advisories": [
            {**asdict(a), "published": _iso(a.published)}
            for a in sorted(advisories, key=lambda a: (a.release, a.source, a.fixed_version))
        ],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def to_json(feed: Feed) -> dict[str, Any]:
    return {
        "format": FEED_FORMAT,
        "key": feed.key,
        "built_at": _iso(feed.built_at),
        "verified_at": _iso(feed.verified_at),
        "changelogs": list(feed.changelogs),
        "suites": [
            {**asdict(s), "date": _iso(s.date), "valid_until": _iso(s.valid_until)}
            for s in feed.suites
        ],
        "advisories": [
            {**asdict(a), "cve_ids": list(a.cve_ids), "published": _iso(a.published)}
            for a in feed.advisories
        ],
    }


def from_json(doc: dict[str, Any]) -> Feed:
    if doc.get("format") != FEED_FORMAT:
        raise ArchiveError(f"feed format {doc.get('format')!r}, expected {FEED_FORMAT}")
    try:
        return Feed(
            key=doc["key"],
            built_at=dt.datetime.fromisoformat(doc["built_at"]),
            verified_at=dt.datetime.fromisoformat(doc["verified_at"]),
            changelogs=tuple(doc.get("changelogs", ())),
            suites=tuple(
                SuiteState(
                    **{**s, "date": _when(s["date"]), "valid_until": _when(s["valid_until"])}
                )
                for s in doc["suites"]
            ),
            advisories=tuple(
                Advisory(
                    **{**a, "cve_ids": tuple(a["cve_ids"]), "published": _when(a["published"])}
                )
                for a in doc["advisories"]
            ),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ArchiveError(f"unreadable feed in the cache: {err}") from err


def save_feed(cache_dir: Path, feed: Feed) -> None:
    """Store the feed and make it the current one (atomically: readers see old or new)."""
    data = json.dumps(to_json(feed), indent=1, sort_keys=True).encode()
    atomic_write(cache_dir / "feeds" / f"{feed.key}.json", data)
    atomic_write(cache_dir / "current.json", data)


def current_feed(cache_dir: Path) -> Feed | None:
    """The feed the last successful update left (None before the first one). No network."""
    path = cache_dir / "current.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        raise ArchiveError(f"{path}: unreadable ({err})") from err
    return from_json(doc)
