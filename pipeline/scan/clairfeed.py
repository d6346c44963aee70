"""Drydock's advisories in the form claircore's Debian updater reads (the Clair feed front).

Clair's Debian updater (claircore v1.5.48, `debian/updater.go` and `parser.go`) reads two
things, from URLs its config names:

* `mirror_url` + `debian/dists/`: an HTML listing whose relative links (`href="bookworm/"`)
  name the releases (names containing "-", "sid", "stable", "updates", ... are skipped),
  then the first 512 bytes of each `dists/<codename>/Release` for its `Version:` header,
  whose major number (the part before the first ".") becomes the distribution version
  ("12 (bookworm)") vulnerabilities are filed under; a version without a "." is skipped;
* `json_url`: the security tracker's JSON, an object
  `{source package: {CVE id: {"description", "releases": {codename: {"status",
  "fixed_version", "urgency"}}}}}`. Every (package, CVE, known release) becomes one
  vulnerability of that *source* package; the matcher compares the installed binary
  package's version with `fixed_version` (empty: every version is affected, "0": none),
  and maps the urgency to a severity (unimportant -> Low, low -> Medium, medium -> High,
  high -> Critical, anything else -> Unknown).

The feed front is a directory served by a static HTTP server (pipeline.tools.clair_service):
`debian/dists/<codename>/Release` (the archive's own Release file, fetched from the mirror
the host's apt sources name) and `tracker/data/json` whose mtime is the feed's time, so the
updater's Last-Modified / If-Modified-Since fingerprint changes exactly when the feed does.
The advisories are the same `Advisory` records Trivy's DB is built from (for the
debian-archive DB: `vulndb.feed_advisories` of the archive-derived feed; see
pipeline.scan.clair_local), so both scanners read one set of facts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from pipeline.archive.version import compare_versions as compare
from pipeline.errors import ToolError
from pipeline.scan.trivydb import Advisory

log = logging.getLogger(__name__)

JSON_PATH = Path("tracker") / "data" / "json"
DISTS = Path("debian") / "dists"
UNASSIGNED = "not yet assigned"
RELEASE_TIMEOUT = 30.0


@dataclass(frozen=True)
class FeedRelease:
    """One Debian release the feed covers, with the archive's Release file for it."""

    codename: str
    release_file: str  # the archive's dists/<codename>/Release text (at least its header)

    @property
    def version(self) -> str:
        for line in self.release_file.splitlines():
            key, _, value = line.partition(":")
            if key == "Version":
                return value.strip()
            if not line.strip():
                break
        return ""


@dataclass(frozen=True)
class FeedWrite:
    """What `write_feed` did."""

    root: Path
    changed: bool  # the served feed differs from before (content or time): restart Clair
    vulnerabilities: int  # (source package, CVE, release) triples served
    generated: dt.datetime


def tracker_json(advisories: Sequence[Advisory]) -> dict[str, dict[str, dict[str, Any]]]:
    """Advisories -> the security tracker JSON claircore parses (pure).

    A CVE fixed by several uploads of one package in one release keeps the lowest fixed
    version (every version from it on is fixed); an unfixed advisory (no fixed version)
    stays open ("") unless a fix for the same release exists.
    """
    doc: dict[str, dict[str, dict[str, Any]]] = {}
    for a in sorted(advisories, key=lambda a: (a.package, a.id, a.release)):
        entry = doc.setdefault(a.package, {}).setdefault(
            a.id, {"description": a.description or f"{a.id} ({a.package})", "releases": {}}
        )
        current = entry["releases"].get(a.release)
        if current is not None:
            if not a.fixed_version:
                continue
            old = current["fixed_version"]
            if old and compare(old, a.fixed_version) <= 0:
                continue
        entry["releases"][a.release] = {
            "status": "resolved" if a.fixed_version else "open",
            "fixed_version": a.fixed_version,
            "urgency": a.urgency or UNASSIGNED,
        }
    return doc


def count(doc: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> int:
    return sum(len(v["releases"]) for cves in doc.values() for v in cves.values())


def fetch_release(archive: str, codename: str) -> FeedRelease:
    """The archive's `dists/<codename>/Release` (the mirror the host's apt sources name)."""
    url = f"{archive.rstrip('/')}/dists/{codename}/Release"
    try:
        resp = requests.get(url, timeout=RELEASE_TIMEOUT)
    except requests.RequestException as err:
        raise ToolError(["GET", url], None, "", f"cannot fetch: {err}") from err
    if resp.status_code != 200:
        raise ToolError(["GET", url], None, "", f"HTTP {resp.status_code}")
    release = FeedRelease(codename, resp.text)
    if "." not in release.version:
        raise ToolError(["GET", url], None, "", f"no dotted Version: header ({release.version!r})")
    return release


def read_release(root: Path, codename: str) -> FeedRelease | None:
    """The Release file a feed front already serves for a release, if any."""
    path = root / DISTS / codename / "Release"
    if not path.is_file():
        return None
    return FeedRelease(codename, path.read_text(encoding="utf-8"))


def _atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_feed(
    root: Path,
    advisories: Sequence[Advisory],
    releases: Sequence[FeedRelease],
    generated: dt.datetime,
) -> FeedWrite:
    """Write the feed front's files under root; the JSON's mtime is `generated`.

    Every advisory's release must be one of `releases` (claircore drops the others
    silently, which would hide them from the scan): anything else is an error.
    """
    known = {r.codename for r in releases}
    unknown = sorted({a.release for a in advisories} - known)
    if unknown:
        raise ToolError(["clair feed"], None, "", f"advisories for unlisted releases {unknown}")
    doc = tracker_json(advisories)
    body = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    target = root / JSON_PATH
    stamp = generated.timestamp()
    before = target.read_bytes() if target.is_file() else b""
    if before and before != body and target.stat().st_mtime >= stamp:
        # Clair asks If-Modified-Since the last Last-Modified: new content must look newer
        # or it is answered "304 Not Modified" and never read.
        stamp = target.stat().st_mtime + 1
        generated = dt.datetime.fromtimestamp(stamp, dt.UTC)
    changed = before != body or not target.is_file() or target.stat().st_mtime != stamp
    for release in releases:
        _atomic(root / DISTS / release.codename / "Release", release.release_file.encode())
    for stale in (root / DISTS).iterdir():
        if stale.is_dir() and stale.name not in known:
            (stale / "Release").unlink(missing_ok=True)
            stale.rmdir()
    if changed:
        _atomic(target, body)
        os.utime(target, (stamp, stamp))
    log.info(
        "Clair feed: %d vulnerabilities for %s (%s)",
        count(doc),
        ", ".join(sorted(known)),
        generated.isoformat(timespec="seconds"),
    )
    return FeedWrite(root, changed, count(doc), generated)
