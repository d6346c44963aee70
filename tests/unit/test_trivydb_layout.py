"""The Debian security-tracker files Drydock writes for the trivy-db builder (pure parts),
and the tool pins read from scripts/tools.sh."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InputError
from pipeline.scan.trivydb import (
    Advisory,
    db_reference,
    fingerprint,
    load_advisories,
    tracker_files,
)
from pipeline.tools.locate import parse_pins, pinned_version, reports_version

FIXED = Advisory("CVE-2099-0001", "openssl", "bookworm", "3.0.99-1~deb12u1", "high", "(demo)")
UNFIXED = Advisory("CVE-2099-0002", "openssl", "bookworm", urgency="low")


def test_tracker_layout_for_fixed_and_unfixed() -> None:
    files = tracker_files([FIXED, UNFIXED])
    assert sorted(files) == [
        "CVE/CVE-2099-0001.json",
        "CVE/CVE-2099-0002.json",
        "distributions.json",
    ]
    assert files["distributions.json"]["bookworm"]["major-version"] == "12"
    assert files["distributions.json"]["sid"]["major-version"] == ""
    fixed = files["CVE/CVE-2099-0001.json"]
    assert fixed["Header"] == {"ID": "CVE-2099-0001", "Description": "(demo)"}
    assert fixed["Annotations"] == [
        {
            "Type": "package",
            "Package": "openssl",
            "Severity": "high",
            "Kind": "fixed",
            "Version": "3.0.99-1~deb12u1",
        },
        {
            "Type": "package",
            "Release": "bookworm",
            "Package": "openssl",
            "Kind": "fixed",
            "Version": "3.0.99-1~deb12u1",
        },
    ]
    unfixed = files["CVE/CVE-2099-0002.json"]["Annotations"]
    assert unfixed[0] == {
        "Type": "package",
        "Package": "openssl",
        "Severity": "low",
        "Kind": "unfixed",
    }
    assert unfixed[1]["Kind"] == "no-dsa" and "Version" not in unfixed[1]


def test_unknown_release_or_urgency_is_bad_input() -> None:
    with pytest.raises(InputError, match="release"):
        tracker_files([Advisory("CVE-2099-1", "x", release="hamm")])
    with pytest.raises(InputError, match="urgency"):
        tracker_files([Advisory("CVE-2099-1", "x", urgency="meh")])


def test_fingerprint_names_the_content_not_the_order() -> None:
    assert fingerprint([FIXED, UNFIXED]) == fingerprint([UNFIXED, FIXED])
    assert fingerprint([FIXED]) != fingerprint([UNFIXED])
    ref = db_reference("127.0.0.1:5000", [FIXED])
    assert ref == f"127.0.0.1:5000/drydock/trivy-db:2-{fingerprint([FIXED])}"


def test_load_advisories(tmp_path: Path) -> None:
    good = tmp_path / "adv.yaml"
    good.write_text(
        "advisories:\n"
        "  - {id: CVE-2099-0001, package: openssl, fixed_version: 3.0.99-1~deb12u1}\n"
        "  - {id: CVE-2099-0002, package: openssl, urgency: low}\n"
    )
    assert load_advisories(good) == (
        Advisory("CVE-2099-0001", "openssl", "bookworm", "3.0.99-1~deb12u1", "high"),
        Advisory("CVE-2099-0002", "openssl", "bookworm", "", "low"),
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("advisories:\n  - {id: nope, package: Openssl, colour: red}\n")
    with pytest.raises(InputError) as err:
        load_advisories(bad)
    assert {p.field for p in err.value.problems} == {
        "advisories.0.id",
        "advisories.0.package",
        "advisories.0.colour",
    }
    with pytest.raises(InputError, match="cannot read"):
        load_advisories(tmp_path / "missing.yaml")


def test_pins_come_from_the_packaged_versions_file() -> None:
    repo = Path(__file__).parents[2]
    # tools.sh builds from the same file the package reads (no second list to drift).
    assert "pipeline/tools/versions.env" in (repo / "scripts" / "tools.sh").read_text()
    pins = parse_pins((repo / "pipeline" / "tools" / "versions.env").read_text())
    assert pins["dockle"] == pinned_version("dockle")
    assert pins["trivy"].startswith("v0.")
    assert pins["trivy-db"].startswith("v0.0.0-")
    assert {"crane", "oras"} <= set(pins)
    assert parse_pins('FOO_BAR_VERSION="v1.2.3"  # comment\nX=1\n') == {"foo-bar": "v1.2.3"}


def test_reports_version() -> None:
    assert reports_version("dockle version 0.4.15", "v0.4.15")
    assert reports_version("Version: 0.74.0\nVulnerability DB:\n  Version: 2", "v0.74.0")
    assert reports_version("v0.22.1\n", "v0.22.1")
    assert not reports_version("dockle version 0.4.150", "v0.4.15")
    assert not reports_version("Version: 10.74.0", "v0.74.0")
    assert not reports_version("Version: 0.74.0-rc1", "v0.74.0")


def test_the_hand_written_fixture_loads_into_the_tracker_layout() -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "advisories" / "hand-written.yaml"
    advisories = load_advisories(fixture)
    files = tracker_files(advisories)
    releases = {
        a["Release"] for a in files["CVE/CVE-2025-1094.json"]["Annotations"] if "Release" in a
    }
    assert releases == {"bookworm", "trixie"}
