"""The Clair feed front's files and the local Clair's config (pure).

The tracker JSON is checked against what claircore v1.5.48's Debian parser reads
(debian/parser.go: package -> CVE -> {description, releases: {codename: {status,
fixed_version, urgency}}}) and the mirror front against its release discovery
(debian/updater.go: relative links under dists/, a dotted Version: in each Release).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pipeline.errors import ToolError
from pipeline.scan.clairfeed import (
    JSON_PATH,
    FeedRelease,
    read_release,
    tracker_json,
    write_feed,
)
from pipeline.scan.trivydb import Advisory
from pipeline.tools import clair_db
from pipeline.tools.clair_service import State, clair_config

BOOKWORM = FeedRelease("bookworm", "Origin: Debian\nSuite: oldstable\nVersion: 12.12\n\nMD5Sum:\n")
TRIXIE = FeedRelease("trixie", "Origin: Debian\nVersion: 13.2\nCodename: trixie\n")
WHEN = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def adv(cve: str, fixed: str, release: str = "bookworm", package: str = "openssl") -> Advisory:
    return Advisory(id=cve, package=package, release=release, fixed_version=fixed, urgency="high")


def test_tracker_json_is_what_claircores_debian_parser_reads() -> None:
    doc = tracker_json(
        [adv("CVE-2026-1", "3.0.22-1~deb12u1"), adv("CVE-2026-1", "3.0.17-1", "trixie")]
    )
    entry = doc["openssl"]["CVE-2026-1"]
    assert set(entry) == {"description", "releases"}
    assert entry["releases"] == {
        "bookworm": {"status": "resolved", "fixed_version": "3.0.22-1~deb12u1", "urgency": "high"},
        "trixie": {"status": "resolved", "fixed_version": "3.0.17-1", "urgency": "high"},
    }


def test_several_fixes_of_one_cve_keep_the_lowest_and_a_fix_beats_no_fix() -> None:
    doc = tracker_json(
        [
            adv("CVE-2026-2", "3.0.22-1~deb12u2"),
            adv("CVE-2026-2", "3.0.22-1~deb12u1"),
            adv("CVE-2026-2", "3.0.22-1~deb12u10"),
            adv("CVE-2026-3", ""),
            adv("CVE-2026-3", "3.0.22-1~deb12u2"),
        ]
    )
    assert doc["openssl"]["CVE-2026-2"]["releases"]["bookworm"]["fixed_version"] == (
        "3.0.22-1~deb12u1"
    )
    assert doc["openssl"]["CVE-2026-3"]["releases"]["bookworm"]["fixed_version"] == (
        "3.0.22-1~deb12u2"
    )
    unfixed = tracker_json([adv("CVE-2026-4", "")])["openssl"]["CVE-2026-4"]["releases"]
    assert unfixed["bookworm"]["fixed_version"] == "" and unfixed["bookworm"]["status"] == "open"


def test_release_version_is_read_from_the_header_only() -> None:
    assert BOOKWORM.version == "12.12"
    assert FeedRelease("x", "Origin: Debian\n\nVersion: 99.1\n").version == ""


def test_the_feed_front_files(tmp_path: Path) -> None:
    root = tmp_path / "feed"
    (root / "debian" / "dists" / "buster").mkdir(parents=True)
    (root / "debian" / "dists" / "buster" / "Release").write_text("old", encoding="utf-8")
    done = write_feed(root, [adv("CVE-2026-5", "3.0.22-1~deb12u2")], [BOOKWORM, TRIXIE], WHEN)
    assert done.changed and done.vulnerabilities == 1
    listing = sorted(p.name for p in (root / "debian" / "dists").iterdir())
    assert listing == ["bookworm", "trixie"]  # a release no longer covered is gone
    assert (root / "debian/dists/bookworm/Release").read_text() == BOOKWORM.release_file
    assert read_release(root, "trixie") == TRIXIE and read_release(root, "buster") is None
    served = root / JSON_PATH
    assert json.loads(served.read_text())["openssl"]["CVE-2026-5"]["releases"]["bookworm"]
    assert served.stat().st_mtime == WHEN.timestamp()  # Last-Modified: the feed's time
    again = write_feed(root, [adv("CVE-2026-5", "3.0.22-1~deb12u2")], [BOOKWORM, TRIXIE], WHEN)
    assert not again.changed  # nothing new: Clair need not restart
    later = WHEN + dt.timedelta(hours=6)
    assert write_feed(root, [adv("CVE-2026-5", "3.0.22-1~deb12u2")], [BOOKWORM], later).changed
    # New content that claims to be older still reaches Clair: it must look newer.
    older = write_feed(root, [adv("CVE-2026-7", "1.0-1")], [BOOKWORM], WHEN)
    assert older.changed and older.generated == later + dt.timedelta(seconds=1)
    assert served.stat().st_mtime == older.generated.timestamp()


def test_advisories_for_a_release_the_front_does_not_list_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"unlisted releases \['sid'\]"):
        write_feed(tmp_path, [adv("CVE-2026-6", "1", release="sid")], [BOOKWORM], WHEN)


def _state(updaters: str) -> State:
    return State(5432, 6060, 6061, 6062, updaters=updaters)


def test_clair_config_local_points_the_debian_updater_at_the_front(tmp_path: Path) -> None:
    cfg = clair_config(_state("local"), "host=127.0.0.1", "cHNr", tmp_path)
    assert cfg["http_listen_addr"] == "127.0.0.1:6060"
    assert cfg["introspection_addr"] == "127.0.0.1:6061"
    assert cfg["updaters"] == {
        "sets": ["debian"],
        "config": {
            "debian": {
                "mirror_url": "http://127.0.0.1:6062/",
                "json_url": "http://127.0.0.1:6062/tracker/data/json",
            }
        },
    }
    assert cfg["auth"] == {"psk": {"key": "cHNr", "iss": ["drydock", "clairctl"]}}
    assert cfg["indexer"]["airgap"] is True
    repo = cfg["indexer"]["scanner"]["repo"]["rhel-repository-scanner"]
    assert repo == {"repo2cpe_mapping_file": str(tmp_path / "repository-to-cpe.json")}
    assert {cfg[k]["connstring"] for k in ("indexer", "matcher", "notifier")} == {"host=127.0.0.1"}


def test_clair_config_default_keeps_clairs_own_updaters(tmp_path: Path) -> None:
    cfg = clair_config(_state("default"), "dsn", "cHNr", tmp_path)
    assert cfg["updaters"] == {"sets": ["debian"]} and cfg["indexer"]["airgap"] is False
    assert "scanner" not in cfg["indexer"]


def test_postgres_listens_on_loopback_only_without_a_socket() -> None:
    argv = clair_db.postgres_argv(Path("/usr/lib/postgresql/15/bin"), Path("/d"), 5999)
    assert "listen_addresses=127.0.0.1" in argv and "port=5999" in argv
    assert "unix_socket_directories=" in argv
    dsn = clair_db.connstring(5999, "s3cret")
    assert "host=127.0.0.1 port=5999 user=clair dbname=clair" in dsn


def test_a_directory_another_user_cannot_search_is_not_reachable() -> None:
    other = clair_db.DbUser("nobody-here", 54321, 54321)
    base = Path(tempfile.mkdtemp(prefix="drydock-searchable-"))  # in /tmp (1777)
    try:
        base.chmod(0o755)
        inner = base / "a" / "b"
        inner.mkdir(parents=True)
        (base / "a").chmod(0o700)
        assert not clair_db.searchable(inner, other)  # like root's 0700 home
        (base / "a").chmod(0o711)
        assert clair_db.searchable(inner, other)  # search only, no listing
        (base / "a").chmod(0o700)
        assert clair_db.searchable(inner, clair_db.DbUser("root", 0, 0))
    finally:
        (base / "a").chmod(0o755)
        shutil.rmtree(base)
    me = clair_db.DbUser("me", os.geteuid(), os.getegid())
    assert clair_db.as_user(["x"], me) == ["x"]
    dropped = clair_db.as_user(["x"], other)
    assert dropped[1:4] == ["--reuid=54321", "--regid=54321", "--init-groups"]
