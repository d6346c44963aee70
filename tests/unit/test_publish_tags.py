"""Release tag computation: CNPG-compatible operand tags and operator tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.errors import InputError
from pipeline.models.images import InstalledPackage
from pipeline.models.targets import Kind, Target
from pipeline.publish import tags

WHEN = datetime(2026, 11, 27, 12, 5, tzinfo=UTC)


def test_operand_tags_follow_cnpg_scheme() -> None:
    ts = tags.operand_tags("15.20", "minimal", "bookworm", WHEN)
    assert ts.immutable == "15.20-202611271205-minimal-bookworm"
    assert ts.rolling == ("15.20-minimal-bookworm", "15-minimal-bookworm")
    assert ts.all == (ts.immutable, *ts.rolling)


def test_preview_versions_drop_the_tilde() -> None:
    ts = tags.operand_tags("19~beta3", "standard", "trixie", WHEN)
    assert ts.immutable == "19beta3-202611271205-standard-trixie"
    assert ts.rolling == ("19beta3-standard-trixie", "19-standard-trixie")


def test_stamp_is_utc_minutes() -> None:
    cet = timezone(timedelta(hours=1))
    assert tags.stamp(datetime(2026, 11, 27, 13, 5, 59, tzinfo=cet)) == "202611271205"
    assert tags.stamp(datetime(2026, 1, 2, 3, 4)) == "202601020304"


def test_operator_tags() -> None:
    ts = tags.operator_tags("v1.27.1", WHEN)
    assert ts.immutable == "1.27.1-202611271205"
    assert ts.rolling == ("1.27.1",)


@pytest.mark.parametrize(
    ("version", "flavour", "release"),
    [
        ("15", "minimal", "bookworm"),
        ("15.x", "minimal", "bookworm"),
        ("15.20", "Minimal", "bookworm"),
        ("15.20", "minimal", "book worm"),
        ("15.20", "", "bookworm"),
        ("15.20-1", "minimal", "bookworm"),
    ],
)
def test_bad_operand_inputs_are_rejected(version: str, flavour: str, release: str) -> None:
    with pytest.raises(InputError):
        tags.operand_tags(version, flavour, release, WHEN)


@pytest.mark.parametrize("version", ["1.2", "1.2.3.4", "latest", "1.2.3+meta"])
def test_bad_operator_versions_are_rejected(version: str) -> None:
    with pytest.raises(InputError):
        tags.operator_tags(version, WHEN)


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        ("15.20-1.pgdg120+1", "15.20"),
        ("17.6-0+deb13u1", "17.6"),
        ("19~beta3-1.pgdg130+1", "19beta3"),
        ("1:16.4-2", "16.4"),
    ],
)
def test_version_from_package(package: str, expected: str) -> None:
    assert tags.version_from_package(package) == expected


def test_version_from_package_rejects_garbage() -> None:
    with pytest.raises(InputError):
        tags.version_from_package("garbage")


def test_parse_operand_tag_round_trips() -> None:
    parsed = tags.parse_operand_tag(tags.operand_tags("16.4", "minimal", "trixie", WHEN).immutable)
    assert parsed == tags.OperandTag("16.4", 16, "202611271205", "minimal", "trixie")
    assert tags.parse_operand_tag("16.4-minimal-trixie") is None
    assert tags.parse_operand_tag("sha256-abc.sig") is None


@pytest.mark.parametrize(
    ("tag", "immutable"),
    [
        ("15.20-202611271205-minimal-bookworm", True),
        ("1.27.1-202611271205", True),
        ("15.20-minimal-bookworm", False),
        ("15-minimal-bookworm", False),
        ("1.27.1", False),
        ("202611271205", False),
    ],
)
def test_is_immutable(tag: str, immutable: bool) -> None:
    assert tags.is_immutable(tag) is immutable


def _target(kind: Kind, **kw: object) -> Target:
    base: dict[str, object] = {
        "name": "postgresql-15-minimal-bookworm",
        "kind": kind,
        "local_tag": "drydock/postgresql:15-minimal-bookworm",
        "repository": "postgresql",
        "release": "bookworm",
        "template": "operand.Dockerfile.j2",
        "version": "15",
        "descriptor": "images/postgresql.yaml",
        "major": 15,
        "flavour": "minimal",
    }
    base.update(kw)
    return Target(**base)  # type: ignore[arg-type]


def test_tags_for_an_operand_read_the_server_package() -> None:
    packages = [
        InstalledPackage("libpq5", "17.2-1.pgdg120+1"),
        InstalledPackage("postgresql-15", "15.20-1.pgdg120+1"),
    ]
    ts = tags.tags_for(_target(Kind.OPERAND), packages, WHEN)
    assert ts.immutable == "15.20-202611271205-minimal-bookworm"


def test_tags_for_the_operator_use_its_version() -> None:
    target = _target(Kind.OPERATOR, name="operator", version="0.3.1", major=None, flavour=None)
    assert tags.tags_for(target, (), WHEN).immutable == "0.3.1-202611271205"


def test_tags_for_refuse_missing_server_package_and_bases() -> None:
    with pytest.raises(InputError, match="postgresql-15"):
        tags.tags_for(_target(Kind.OPERAND), [InstalledPackage("libpq5", "15.1-1")], WHEN)
    with pytest.raises(InputError):
        tags.tags_for(_target(Kind.BASE, major=None), (), WHEN)


def test_release_for_target_uses_the_local_repository() -> None:
    from pipeline.publish.push import Release

    ts = tags.operand_tags("15.20", "minimal", "bookworm", WHEN)
    release = Release.for_target(_target(Kind.OPERAND), ts, created="2026-11-27T12:05:00Z")
    assert release.repository == "drydock/postgresql"
    assert release.staging_repository == "staging/drydock/postgresql"
    assert (release.major, release.flavour, release.release) == (15, "minimal", "bookworm")
