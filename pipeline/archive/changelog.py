"""Debian changelogs: which CVEs each upload to a release fixes (pure).

The archive's indices say *that* a security upload exists and which version it is; only
the package's changelog says what it fixes. Debian's security team lists the CVE ids an
upload fixes in its changelog entry, and an upload that imports a new upstream version
also carries the unstable entries it merged. So, walking from the newest entry down to
the release's current point-release version, every CVE id is attributed to the first
upload to that release that contains the entry naming it: its fixed version in that
release. Entries at or below the point-release version are already in the point release
and are not walked (a CVE fixed before it needs no advisory for an image built from it).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.archive.version import compare_versions

_HEADER = re.compile(r"^(\S+) \(([^)\s]+)\) ([^;]+);(.*)$")
_TRAILER = re.compile(r"^ -- (.*?)  (\S.*)$")
_URGENCY = re.compile(r"urgency=(\w+)", re.IGNORECASE)
CVE_ID = re.compile(r"\bCVE-\d{4}-\d{4,}\b")


@dataclass(frozen=True)
class Entry:
    """One changelog entry."""

    package: str
    version: str
    distributions: tuple[str, ...]  # "bookworm-security"
    urgency: str  # "medium", "high", ... ("" when absent)
    date: dt.datetime | None
    text: str  # the change lines


@dataclass(frozen=True)
class Upload:
    """An upload to one release and the CVE ids the changelog says it fixes."""

    version: str
    distribution: str
    urgency: str
    date: dt.datetime | None
    cve_ids: tuple[str, ...]


def _date(text: str) -> dt.datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError):
        return None
    return when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)


def parse_changelog(text: str) -> tuple[Entry, ...]:
    """debian/changelog text -> its entries, newest first. Unparsable lines are skipped;
    a changelog without a single entry header is an empty tuple."""
    entries: list[Entry] = []
    head: tuple[str, str, tuple[str, ...], str] | None = None
    body: list[str] = []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            head = (
                header.group(1),
                header.group(2),
                tuple(header.group(3).split()),
                (m.group(1).lower() if (m := _URGENCY.search(header.group(4))) else ""),
            )
            body = []
            continue
        trailer = _TRAILER.match(line)
        if trailer and head is not None:
            package, version, dists, urgency = head
            entries.append(
                Entry(package, version, dists, urgency, _date(trailer.group(2)), "\n".join(body))
            )
            head = None
            continue
        if head is not None:
            body.append(line)
    return tuple(entries)


def targets_release(entry: Entry, release: str) -> bool:
    """Was this entry uploaded to `release` ("bookworm", "bookworm-security", ...)?"""
    return any(d == release or d.startswith(release + "-") for d in entry.distributions)


def cve_ids(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(CVE_ID.findall(text)))


def uploads_since(entries: Sequence[Entry], release: str, base: str) -> tuple[Upload, ...]:
    """The uploads to `release` newer than `base` (the point release's version; "" when
    the point release does not have the package), newest first, each with the CVE ids
    first fixed for that release by it. The newest entry always counts as an upload: it
    is the version the index published."""
    walked: list[Entry] = []
    for entry in entries:
        if base and compare_versions(entry.version, base) <= 0:
            break
        walked.append(entry)
    uploads: list[tuple[Entry, list[str]]] = []
    # Oldest first: each entry's CVEs go to the next upload at or after it.
    pending: list[str] = []
    for index in range(len(walked) - 1, -1, -1):
        entry = walked[index]
        pending += cve_ids(entry.text)
        if index == 0 or targets_release(entry, release):
            uploads.append((entry, pending))
            pending = []
    # Newest upload first: a CVE named again by a later upload (an incomplete first fix,
    # a regression) is fixed only by the later one, as Debian's tracker records it.
    seen: set[str] = set()
    result: list[Upload] = []
    for entry, ids in reversed(uploads):
        fresh = tuple(i for i in dict.fromkeys(ids) if i not in seen)
        seen.update(fresh)
        result.append(
            Upload(entry.version, " ".join(entry.distributions), entry.urgency, entry.date, fresh)
        )
    return tuple(result)
