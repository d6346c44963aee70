"""Release tag computation: CNPG-compatible operand tags and operator tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pipeline.errors import InputError
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
