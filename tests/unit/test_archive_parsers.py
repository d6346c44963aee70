"""The Debian archive's formats, parsed from real files of the archive (pure, no network).

Fixtures in tests/fixtures/debian-archive are verbatim files of Debian's mirror (see
tests/fixtures/PROVENANCE.md); version comparisons were checked against
`dpkg --compare-versions` on a Debian 12 host.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipeline.archive.changelog import parse_changelog, uploads_since
from pipeline.archive.deb822 import (
    installed_sources,
    os_release_codename,
    parse_packages,
    parse_release,
    parse_sources,
    source_versions,
)
from pipeline.archive.version import compare_versions, newest
from pipeline.errors import ArchiveError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "debian-archive"
OPENSSL_LOG = (FIXTURES / "openssl_3.0.22-1~deb12u2.changelog").read_text(encoding="utf-8")


def signed_content(path: Path) -> str:
    """The text an InRelease signs (what gpgv --output writes; no dash-escaped lines)."""
    text = path.read_text(encoding="utf-8")
    body = text.split("\n\n", 1)[1]
    return body.split("-----BEGIN PGP SIGNATURE-----", 1)[0]


@pytest.mark.parametrize(
    ("a", "op", "b"),
    [
        ("3.0.20-1~deb12u2", "<", "3.0.22-1~deb12u2"),
        ("2.36-9+deb12u10", ">", "2.36-9+deb12u7"),  # not a string comparison
        ("1:2.0", ">", "3.0"),  # the epoch wins
        ("1.0~rc1", "<", "1.0"),  # ~ sorts before the end
        ("1.0", "=", "1.0-0"),
        ("1.0-1", ">", "1.0-1~bpo"),
        ("1.2a", ">", "1.2"),
        ("1.002", "=", "1.2"),
        ("1.0+b1", ">", "1.0"),
        ("1.0.a", ">", "1.0+"),  # '.' sorts after '+'
        ("9.2p1-2+deb12u7", ">", "9.2p1-2+deb12u6"),
        ("2026f-0+deb12u1", ">", "2026b-0+deb12u1"),
    ],
)
def test_versions_compare_as_dpkg_does(a: str, op: str, b: str) -> None:
    expected = {"<": -1, "=": 0, ">": 1}[op]
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_not_a_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a Debian version"):
        compare_versions("abc", "1.0")
    assert newest(["2.36-9+deb12u7", "2.36-9+deb12u10", "2.36-8"]) == "2.36-9+deb12u10"


def test_a_real_security_release_file() -> None:
    release = parse_release(signed_content(FIXTURES / "bookworm-security.InRelease"))
    assert (release.codename, release.release, release.major) == (
        "bookworm-security",
        "bookworm",
        "12",
    )
    assert release.date == dt.datetime(2026, 11, 30, 0, 22, 33, tzinfo=dt.UTC)
    assert release.valid_until == dt.datetime(2026, 12, 7, 0, 22, 33, tzinfo=dt.UTC)
    assert release.by_hash
    sources = release.file("main/source/Sources.xz")
    assert (sources.size, sources.sha256[:12]) == (306612, "620e0517f06f")
    with pytest.raises(ArchiveError, match="names no file main/nope"):
        release.file("main/nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty Release"),
        ("Origin: Debian\nDate: Mon, 30 Nov 2026 00:22:33 UTC\n", "lacks Codename, SHA256"),
        (
            "Codename: x\nDate: someday\nSHA256:\n " + "0" * 64 + " 1 a\n",
            "not a date",
        ),
        ("Codename: x\nDate: Mon, 30 Nov 2026 00:22:33 UTC\nSHA256:\n zz 1 a\n", "bad SHA256"),
    ],
)
def test_an_unusable_release_file_is_an_error(text: str, message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        parse_release(text)


def test_sources_and_packages_indices() -> None:
    sources = parse_sources(
        (FIXTURES / "bookworm-security.Sources").read_text(encoding="utf-8").splitlines()
    )
    assert {(s.package, s.version) for s in sources} >= {
        ("openssl", "3.0.22-1~deb12u2"),
        ("glibc", "2.36-9+deb12u7"),
        ("glibc", "2.36-9+deb12u10"),  # the index keeps older uploads too
    }
    openssl = next(s for s in sources if s.package == "openssl")
    assert openssl.directory == "pool/updates/main/o/openssl"
    assert "libssl3" in openssl.binaries
    lines = (FIXTURES / "bookworm-security.Sources").read_text(encoding="utf-8").splitlines()
    assert newest(source_versions(lines)["glibc"]) == "2.36-9+deb12u10"
    packages = parse_packages(
        (FIXTURES / "bookworm-security.Packages").read_text(encoding="utf-8").splitlines()
    )
    libssl3 = next(p for p in packages if p.package == "libssl3")
    assert (libssl3.source, libssl3.source_version) == ("openssl", "3.0.22-1~deb12u2")
    assert libssl3.filename.startswith("pool/updates/main/o/openssl/libssl3_")
    assert len(libssl3.sha256) == 64 and libssl3.size > 0


def test_installed_sources_from_a_dpkg_status() -> None:
    status = (
        "Package: libssl3\nStatus: install ok installed\nSource: openssl (3.0.20-1~deb12u2)\n"
        "Version: 3.0.20-1~deb12u2\n\n"
        "Package: zlib1g\nStatus: install ok installed\nSource: zlib\nVersion: 1:1.2.13\n\n"
        "Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b7\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n"
    )
    assert installed_sources(status) == {"openssl", "zlib", "bash"}
    assert os_release_codename('NAME="Debian"\nVERSION_CODENAME=bookworm\n') == "bookworm"
    assert os_release_codename("ID=alpine\n") == ""


def test_a_real_changelog_is_read_entry_by_entry() -> None:
    entries = parse_changelog(OPENSSL_LOG)
    top = entries[0]
    assert (top.package, top.version, top.distributions, top.urgency) == (
        "openssl",
        "3.0.22-1~deb12u2",
        ("bookworm-security",),
        "high",
    )
    assert top.date == dt.datetime(2026, 10, 21, 9, 54, 24, tzinfo=dt.UTC)
    assert [e.version for e in entries[:4]] == [
        "3.0.22-1~deb12u2",
        "3.0.22-1~deb12u1",
        "3.0.20-1~deb12u2",
        "3.0.20-1~deb12u1",
    ]


def test_the_uploads_since_the_point_release_carry_their_own_cve_ids() -> None:
    uploads = uploads_since(parse_changelog(OPENSSL_LOG), "bookworm", "3.0.20-1~deb12u2")
    assert [(u.version, u.urgency) for u in uploads] == [
        ("3.0.22-1~deb12u2", "high"),
        ("3.0.22-1~deb12u1", "medium"),
    ]
    assert uploads[0].cve_ids == (
        "CVE-2026-84782",
        "CVE-2026-35189",
        "CVE-2026-54872",
        "CVE-2026-75805",
        "CVE-2026-75806",
        "CVE-2026-77696",
    )
    assert "CVE-2026-42767" in uploads[1].cve_ids
    assert not set(uploads[0].cve_ids) & set(uploads[1].cve_ids)
    # nothing newer than the current version: nothing to fix
    assert uploads_since(parse_changelog(OPENSSL_LOG), "bookworm", "3.0.22-1~deb12u2") == ()


def _entry(version: str, dist: str, text: str, day: int) -> str:
    return (
        f"pkg ({version}) {dist}; urgency=medium\n\n{text}\n\n"
        f" -- A Maintainer <a@example.org>  Mon, {day:02d} Nov 2026 10:00:00 +0000\n\n"
    )


def test_merged_unstable_entries_belong_to_the_upload_that_brought_them() -> None:
    log = (
        _entry("2.0-1~deb12u1", "bookworm-security", "  * Rebuild for bookworm.", 9)
        + _entry("2.0-1", "unstable", "  * New upstream, fixes CVE-2026-2000.", 8)
        + _entry("1.1-1", "unstable", "  * Fixes CVE-2026-1100.", 7)
        + _entry("1.0-1+deb12u2", "bookworm-security", "  * Fix CVE-2026-1002, CVE-2026-1001.", 6)
        + _entry("1.0-1+deb12u1", "bookworm", "  * Fix CVE-2026-1001 (incomplete).", 5)
        + _entry("1.0-1", "unstable", "  * Fixes CVE-2025-0001.", 4)
    )
    uploads = uploads_since(parse_changelog(log), "bookworm", "1.0-1")
    assert [(u.version, u.cve_ids) for u in uploads] == [
        ("2.0-1~deb12u1", ("CVE-2026-1100", "CVE-2026-2000")),
        ("1.0-1+deb12u2", ("CVE-2026-1002", "CVE-2026-1001")),  # the later fix wins
        ("1.0-1+deb12u1", ()),
    ]
    # the point release already has 1.0-1+deb12u2: only the newer upload remains
    newer = uploads_since(parse_changelog(log), "bookworm", "1.0-1+deb12u2")
    assert [u.version for u in newer] == ["2.0-1~deb12u1"]
