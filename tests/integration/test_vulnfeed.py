"""The Debian-archive feed against the real archive, gpgv and the real trivy-db builder.

Trust comes from the archive keyring: a real InRelease verifies, the same file changed by
one byte, checked against a keyring without Debian's keys or past its Valid-Until does
not, and an index whose bytes differ from the hash the signed Release names is refused.
Then the feed is derived from the mirror the host's apt sources name, and the DB built
from it holds exactly the advisories the feed says (read back from the bbolt file).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.archive.client import ArchiveClient
from pipeline.archive.deb822 import source_versions
from pipeline.archive.feed import current_feed
from pipeline.archive.mirrors import host_mirrors
from pipeline.archive.update import FeedRequest, update_feed
from pipeline.archive.version import compare_versions, newest
from pipeline.errors import ArchiveError
from pipeline.scan.boltdb import platform_counts
from pipeline.scan.vulndb import archive_db, feed_advisories

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian-archive"
INRELEASE = (FIXTURES / "bookworm-security.InRelease").read_bytes()
SIGNED_DAY = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # inside the fixture's validity
CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")


@contextmanager
def mirror(files: dict[str, bytes]) -> Iterator[str]:
    """A tiny mirror on 127.0.0.1 serving `files` by path (404 for anything else)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/debian-security"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _client(
    tmp: Path, when: dt.datetime = SIGNED_DAY, keyring: Path | None = None
) -> ArchiveClient:
    if keyring is None:
        return ArchiveClient(tmp, now=lambda: when)
    return ArchiveClient(tmp, keyring=keyring, now=lambda: when)


def test_only_a_signed_unexpired_inrelease_is_accepted(tmp_path: Path) -> None:
    path = "/debian-security/dists/bookworm-security/InRelease"
    with mirror({path: INRELEASE}) as url:
        verified = _client(tmp_path).release(url, "bookworm-security")
        assert verified.release.codename == "bookworm-security"
        with pytest.raises(ArchiveError, match="expired"):
            _client(tmp_path, when=dt.datetime(2026, 12, 8, tzinfo=dt.UTC)).release(
                url, "bookworm-security"
            )
        empty = tmp_path / "empty.gpg"
        empty.write_bytes(b"")
        with pytest.raises(ArchiveError, match="signature does not verify"):
            _client(tmp_path, keyring=empty).release(url, "bookworm-security")
    replayed = {"/debian-security/dists/trixie-security/InRelease": INRELEASE}
    with (
        mirror(replayed) as other,
        pytest.raises(ArchiveError, match="signed for 'bookworm-security', not 'trixie"),
    ):
        _client(tmp_path).release(other, "trixie-security")
    tampered = INRELEASE.replace(b"Suite: oldstable-security", b"Suite: stable-security", 1)
    assert tampered != INRELEASE
    with (
        mirror({path: tampered}) as url,
        pytest.raises(ArchiveError, match="signature does not verify"),
    ):
        _client(tmp_path).release(url, "bookworm-security")


def test_an_index_whose_bytes_differ_from_the_signed_hash_is_refused(tmp_path: Path) -> None:
    files = {"/debian-security/dists/bookworm-security/InRelease": INRELEASE}
    forged = b"\xfd7zXZ\x00 not the index the Release names"
    for suffix in ("main/source/Sources.xz", "main/source/by-hash/SHA256/" + "0" * 64):
        files[f"/debian-security/dists/bookworm-security/{suffix}"] = forged
    with mirror(files) as url:
        client = _client(tmp_path)
        verified = client.release(url, "bookworm-security")
        entry = verified.release.file("main/source/Sources.xz")
        files[
            f"/debian-security/dists/bookworm-security/main/source/by-hash/SHA256/{entry.sha256}"
        ] = forged
        with pytest.raises(ArchiveError, match="SHA-256 differs from the signed index"):
            client.index(verified, "main/source/Sources")
    assert not list((tmp_path / "blobs" / "sha256").glob("*"))  # nothing unverified is kept


@pytest.fixture(scope="module")
def feed_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vulnfeed")


WANTED = frozenset({"openssl", "zlib", "glibc", "postgresql-15", "tzdata"})


def test_the_feed_from_the_real_archive(feed_cache: Path) -> None:
    request = FeedRequest(("bookworm",), {"bookworm": WANTED}, host_mirrors())
    feed = update_feed(feed_cache, request)
    assert {s.suite for s in feed.suites} == {"bookworm", "bookworm-security", "bookworm-updates"}
    assert all(len(s.inrelease_sha256) == 64 for s in feed.suites)
    assert feed.releases == {"bookworm": "12"}
    assert feed.advisories, "bookworm-security lists no upload newer than the point release?"
    read = [a for a in feed.advisories if a.changelog]
    assert {a.source for a in read} <= WANTED  # changelogs only of what the images hold
    assert all(CVE.match(c) for a in feed.advisories for c in a.cve_ids)
    assert any(a.cve_ids for a in read), "no CVE id read from any changelog"
    unread = [a for a in feed.advisories if not a.changelog]
    assert unread and all(a.suite == "bookworm-security" and not a.cve_ids for a in unread)
    # a second update with nothing changed upstream gives the same feed, only re-verified,
    # and drops what no current Release names
    kept = sorted(p.name for p in (feed_cache / "blobs" / "sha256").iterdir())
    stale = feed_cache / "blobs" / "sha256" / ("0" * 64)
    stale.write_bytes(b"an index of a Release long gone")
    (feed_cache / "summaries" / ("0" * 64 + ".json")).write_text("{}")
    again = update_feed(feed_cache, request)
    assert sorted(p.name for p in (feed_cache / "blobs" / "sha256").iterdir()) == kept
    assert not (feed_cache / "summaries" / ("0" * 64 + ".json")).exists()
    assert again.key == feed.key and again.built_at == feed.built_at
    assert again.verified_at >= feed.verified_at
    assert current_feed(feed_cache) == again


def test_every_advisory_is_newer_than_the_point_release(feed_cache: Path) -> None:
    feed = current_feed(feed_cache)
    assert feed is not None
    client = ArchiveClient(feed_cache)
    point = client.release(host_mirrors().archive, "bookworm")
    lines = client.index(point, "main/source/Sources").decode().splitlines()
    base = {pkg: newest(versions) for pkg, versions in source_versions(lines).items()}
    for advisory in feed.advisories:
        if advisory.source in base:
            assert compare_versions(advisory.fixed_version, base[advisory.source]) > 0, advisory


def test_the_db_holds_exactly_the_feeds_advisories(feed_cache: Path) -> None:
    feed = current_feed(feed_cache)
    assert feed is not None
    built = archive_db(feed, feed_cache / "trivy-db")
    expected: dict[str, int] = {}
    for advisory in feed_advisories(feed):
        platform = f"debian {feed.releases[advisory.release]}"
        expected[platform] = expected.get(platform, 0) + 1
    assert platform_counts(built / "trivy.db") == expected
    stamp = (built / "trivy.db").stat().st_mtime_ns
    assert archive_db(feed, feed_cache / "trivy-db") == built  # cached by the feed's key
    assert (built / "trivy.db").stat().st_mtime_ns == stamp
