"""Fetch from a Debian mirror only what verifies: InRelease, indices, pool files.

The chain of trust is apt's: a suite's InRelease must carry a good signature from the
archive keyring (gpgv) and must not be past its Valid-Until; every index is then fetched
(by hash when the suite allows it) and accepted only if its size and SHA-256 are the ones
the signed Release names; a pool file only if it matches the hash its signed index names.
Verified files are kept in a content-addressed cache (their SHA-256 is their name), so an
unchanged index is never downloaded twice and a nightly whose InReleases did not change
costs a few small requests. Every HTTP call has a timeout.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import hashlib
import logging
import lzma
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from pipeline.archive.deb822 import IndexFile, Release, parse_release
from pipeline.errors import ArchiveError, ToolError
from pipeline.tools.gpgv import DEFAULT_KEYRING, verify_clearsigned

log = logging.getLogger(__name__)

TIMEOUT = 30.0
# Compressed forms of an index, best first; Python reads each without a tool.
_COMPRESSIONS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    (".xz", lzma.decompress),
    (".gz", gzip.decompress),
    (".bz2", bz2.decompress),
    ("", lambda b: b),
)


@dataclass(frozen=True)
class VerifiedRelease:
    """A suite's Release whose InRelease verified, and where it came from."""

    url: str  # archive root, e.g. http://<mirror>/debian-security
    suite: str  # as asked for: "bookworm-security"
    release: Release
    inrelease_sha256: str  # of the InRelease bytes: the suite's identity for caching
    fetched_at: dt.datetime


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename: readers never see half a file, and two
    Drydock processes sharing a cache never interleave their writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArchiveClient:
    """Reads suites of Debian mirrors into a verified, content-addressed cache."""

    def __init__(
        self,
        cache: Path,
        *,
        keyring: Path = DEFAULT_KEYRING,
        timeout: float = TIMEOUT,
        session: requests.Session | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.blobs = cache / "blobs" / "sha256"
        self.keyring = keyring
        self.timeout = timeout
        self._session = session
        self._local = threading.local()
        self.now = now

    @property
    def session(self) -> requests.Session:
        """The given session, else one per thread (changelogs are fetched in parallel)."""
        if self._session is not None:
            return self._session
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session

    def _get(self, url: str) -> bytes:
        try:
            response = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as err:
            raise ArchiveError(f"{url}: unreachable ({type(err).__name__}: {err})") from err
        if response.status_code != 200:
            raise ArchiveError(f"{url}: HTTP {response.status_code}")
        return response.content

    def release(self, url: str, suite: str) -> VerifiedRelease:
        """Fetch and verify dists/<suite>/InRelease of the archive at `url`."""
        location = f"{url.rstrip('/')}/dists/{suite}/InRelease"
        data = self._get(location)
        try:
            text = verify_clearsigned(data, self.keyring)
        except ToolError as err:
            raise ArchiveError(f"{location}: signature does not verify: {err}") from err
        release = parse_release(text, location)
        if release.codename != suite:
            raise ArchiveError(f"{location}: signed for {release.codename!r}, not {suite!r}")
        now = self.now()
        if release.valid_until is not None and release.valid_until < now:
            raise ArchiveError(
                f"{location}: expired (Valid-Until {release.valid_until:%Y-%m-%d %H:%M} UTC): "
                "the mirror is stale or replaying an old Release"
            )
        digest = hashlib.sha256(data).hexdigest()
        log.debug("verified %s (%s)", location, digest[:12])
        return VerifiedRelease(url.rstrip("/"), suite, release, digest, now)

    def _blob(self, digest: str) -> bytes | None:
        path = self.blobs / digest
        try:
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            path.unlink(missing_ok=True)
            return None
        return data

    def _fetch_verified(self, urls: list[str], size: int, digest: str, keep: bool) -> bytes:
        cached = self._blob(digest) if keep else None
        if cached is not None:
            return cached
        problems = []
        for url in urls:
            try:
                data = self._get(url)
            except ArchiveError as err:
                problems.append(str(err))
                continue
            if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                problems.append(f"{url}: size or SHA-256 differs from the signed index")
                continue
            if keep:
                atomic_write(self.blobs / digest, data)
            return data
        raise ArchiveError("; ".join(problems))

    def index(self, verified: VerifiedRelease, path: str) -> bytes:
        """An index (e.g. "main/source/Sources"), decompressed, verified against the Release."""
        rel = verified.release
        for suffix, decompress in _COMPRESSIONS:
            if not rel.has(path + suffix):
                continue
            entry: IndexFile = rel.file(path + suffix)
            base = f"{verified.url}/dists/{verified.suite}"
            urls = [f"{base}/{entry.path}"]
            if rel.by_hash:
                folder = entry.path.rsplit("/", 1)[0]
                urls.insert(0, f"{base}/{folder}/by-hash/SHA256/{entry.sha256}")
            data = self._fetch_verified(urls, entry.size, entry.sha256, keep=True)
            try:
                return decompress(data)
            except (OSError, EOFError, lzma.LZMAError) as err:
                raise ArchiveError(f"{urls[-1]}: cannot decompress: {err}") from err
        raise ArchiveError(f"{verified.suite}: its Release names no {path} index")

    def pool_file(self, url: str, filename: str, size: int, sha256: str) -> bytes:
        """A file of the pool (e.g. a .deb), verified against the hash its index names.
        Not cached: callers keep what they derive from it, not the package."""
        return self._fetch_verified([f"{url.rstrip('/')}/{filename}"], size, sha256, keep=False)

    def prune(self, keep: set[str]) -> int:
        """Delete cached indices no longer named by a current Release; returns how many."""
        removed = 0
        for path in self.blobs.glob("*") if self.blobs.is_dir() else ():
            if path.name not in keep and not path.name.startswith("."):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
