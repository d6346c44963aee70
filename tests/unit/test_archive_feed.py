"""The feed's pure parts: changelogs out of .deb files, its cache form, and its Trivy form."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import lzma
import tarfile
from pathlib import Path

import pytest

from pipeline.archive.debfile import changelog_from_deb
from pipeline.archive.feed import (
    Advisory,
    Feed,
    SuiteState,
    current_feed,
    feed_key,
    from_json,
    save_feed,
    to_json,
)
from pipeline.archive.mirrors import Mirrors
from pipeline.errors import ArchiveError, InputError, ScanError
from pipeline.models.provenance import VulnDbSource
from pipeline.scan.base import ArchiveFeedSettings
from pipeline.scan.vulndb import archive_feed, feed_advisories, parse_choice, synthetic_id

LOG = (
    "openssl (3.0.22-1~deb12u2) bookworm-security; urgency=high\n\n  * CVE-2026-84782\n\n"
    " -- A Maintainer <a@example.org>  Wed, 21 Oct 2026 16:54:24 +0700\n"
)


def _tar_xz(members: list[tuple[str, bytes | None, str]]) -> bytes:
    """(path, content, symlink target) -> an xz-compressed tar, as dpkg-deb writes data.tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, content, link in members:
            info = tarfile.TarInfo(path)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(content or b"")
                tar.addfile(info, io.BytesIO(content or b""))
    return lzma.compress(raw.getvalue())


def _deb(data_tar: bytes, name: str = "data.tar.xz") -> bytes:
    out = b"!<arch>\n"
    for member, content in (("debian-binary", b"2.0\n"), ("control.tar.xz", b""), (name, data_tar)):
        header = f"{member + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n"
        out += header.encode() + content + (b"\n" if len(content) % 2 else b"")
    return out


def test_the_changelog_comes_out_of_a_binary_package() -> None:
    deb = _deb(
        _tar_xz(
            [
                ("./usr/share/doc/libssl3/copyright", b"...", ""),
                ("./usr/share/doc/libssl3/changelog.gz", gzip.compress(b"upstream log"), ""),
                ("./usr/share/doc/libssl3/changelog.Debian.gz", gzip.compress(LOG.encode()), ""),
            ]
        )
    )
    assert changelog_from_deb(deb, "openssl") == LOG


def test_a_package_without_its_own_changelog_is_refused() -> None:
    linked = _deb(_tar_xz([("./usr/share/doc/libssl-dev", None, "libssl3")]))
    with pytest.raises(ArchiveError, match="no Debian changelog of openssl"):
        changelog_from_deb(linked, "openssl")
    other = _deb(
        _tar_xz([("./usr/share/doc/x/changelog.Debian.gz", gzip.compress(LOG.encode()), "")])
    )
    with pytest.raises(ArchiveError, match="no Debian changelog of zlib"):
        changelog_from_deb(other, "zlib")  # a changelog, but of another source
    with pytest.raises(ArchiveError, match="no ar magic"):
        changelog_from_deb(b"PK\x03\x04", "openssl")
    with pytest.raises(ArchiveError, match="compression not supported"):
        changelog_from_deb(_deb(b"\x28\xb5\x2f\xfd", "data.tar.zst"), "openssl")


NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
SUITE = SuiteState("bookworm-security", "bookworm", "12", "http://mirror.invalid", "ab" * 32, NOW)


def _advisory(**changes: object) -> Advisory:
    fields: dict[str, object] = {
        "release": "bookworm",
        "major": "12",
        "suite": "bookworm-security",
        "source": "openssl",
        "fixed_version": "3.0.22-1~deb12u2",
        "cve_ids": ("CVE-2026-84782", "CVE-2026-35189"),
        "urgency": "high",
        "published": NOW - dt.timedelta(days=40),
        "changelog": True,
    }
    fields.update(changes)
    return Advisory(**fields)  # type: ignore[arg-type]


def test_the_feed_survives_its_cache_and_its_key_follows_its_content(tmp_path: Path) -> None:
    advisories = (_advisory(), _advisory(source="zlib", fixed_version="1:1.2.13.dfsg-1+deb12u1"))
    key = feed_key(advisories, (SUITE,))
    feed = Feed(key, advisories, (SUITE,), NOW, NOW, ("bookworm/openssl",))
    assert from_json(to_json(feed)) == feed
    assert current_feed(tmp_path) is None
    save_feed(tmp_path, feed)
    assert current_feed(tmp_path) == feed
    assert feed_key(advisories[:1], (SUITE,)) != key
    assert feed_key((advisories[1], advisories[0]), (SUITE,)) == key  # order does not matter
    assert feed.releases == {"bookworm": "12"} and feed.count("12") == 2


def test_the_trivy_form_one_advisory_per_cve_newest_fix_wins() -> None:
    feed = Feed(
        "k",
        (
            _advisory(fixed_version="3.0.22-1~deb12u1", cve_ids=("CVE-2026-35189",)),
            _advisory(),
            _advisory(source="tzdata", fixed_version="2026f-0+deb12u1", cve_ids=(), urgency="low"),
            _advisory(source="xz-utils", cve_ids=(), changelog=False, urgency=""),
        ),
        (SUITE,),
        NOW,
        NOW,
    )
    tracker = {(a.id, a.package): a for a in feed_advisories(feed)}
    assert tracker["CVE-2026-35189", "openssl"].fixed_version == "3.0.22-1~deb12u2"
    assert tracker["CVE-2026-84782", "openssl"].urgency == "high"
    assert "bookworm-security, 2026-10-23" in tracker["CVE-2026-84782", "openssl"].description
    dsu = synthetic_id("bookworm", "tzdata", "2026f-0+deb12u1")
    assert tracker[dsu, "tzdata"].urgency == "low"
    unread = tracker[synthetic_id("bookworm", "xz-utils", "3.0.22-1~deb12u2"), "xz-utils"]
    assert unread.urgency == "not yet assigned"  # the builder files it as UNKNOWN severity


@pytest.mark.parametrize(
    ("text", "source", "reference"),
    [
        ("auto", "auto", ""),
        ("public", VulnDbSource.PUBLIC, ""),
        ("debian-archive", VulnDbSource.DEBIAN_ARCHIVE, ""),
        ("mirror:registry.example/trivy-db:2", VulnDbSource.MIRROR, "registry.example/trivy-db:2"),
        ("mirror", VulnDbSource.MIRROR, "policy.example/db:2"),
    ],
)
def test_vuln_db_choices(text: str, source: str, reference: str) -> None:
    choice = parse_choice(text, mirror="policy.example/db:2")
    assert (choice.source, choice.reference) == (source, reference)


def test_a_bad_vuln_db_choice_names_the_option_and_the_value() -> None:
    with pytest.raises(InputError) as info:
        parse_choice("local")
    assert str(info.value.problems[0]).startswith("--vuln-db: local: unknown vulnerability DB")
    with pytest.raises(InputError, match="mirror needs a reference"):
        parse_choice("mirror")


def test_an_unreachable_archive_falls_back_to_the_cached_feed(tmp_path: Path) -> None:
    dead = Mirrors("http://127.0.0.1:9/debian", "http://127.0.0.1:9/debian-security")
    settings = ArchiveFeedSettings(tmp_path, dead, ("bookworm",))
    with pytest.raises(ScanError, match="could not be read and no feed is cached"):
        archive_feed(settings, {})
    feed = Feed(feed_key((_advisory(),), (SUITE,)), (_advisory(),), (SUITE,), NOW, NOW)
    save_feed(tmp_path, feed)
    assert archive_feed(settings, {"bookworm": frozenset({"openssl"})}) == feed
    offline = ArchiveFeedSettings(tmp_path, dead, ("bookworm",), update=False)
    assert archive_feed(offline, {}) == feed  # never even tries
