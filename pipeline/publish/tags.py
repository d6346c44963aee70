"""Release tags for published images, computed from versions and a build time (pure).

Operands follow CloudNativePG's scheme so existing tooling (catalog generators, Renovate
regex managers) understands them: one immutable tag per build,
`MAJOR.MINOR-YYYYMMDDhhmm-FLAVOUR-RELEASE`, plus two rolling tags that move to the newest
build, `MAJOR.MINOR-FLAVOUR-RELEASE` and `MAJOR-FLAVOUR-RELEASE`. The operator gets the
immutable `X.Y.Z-YYYYMMDDhhmm` and the rolling `X.Y.Z`.

Pre-releases use the PostgreSQL Debian spelling (`19~beta3`) as input and CNPG's tag
spelling (`19beta3`) as output, since `~` is not allowed in a tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.errors import InputError
from pipeline.models.images import InstalledPackage
from pipeline.models.targets import Kind, Target

# The OCI distribution spec's tag grammar.
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_WORD = re.compile(r"^[a-z0-9]+$")
_OPERAND_VERSION = re.compile(r"^(?P<major>\d+)(?P<rest>\.\d+|(?:alpha|beta|rc)\d+)$")
_OPERATOR_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-(?:alpha|beta|rc)\.?\d+)?$")
_STAMP = re.compile(r"^\d{12}$")
_OPERAND_TAG = re.compile(
    r"^(?P<version>(?P<major>\d+)(?:\.\d+|(?:alpha|beta|rc)\d+))-(?P<stamp>\d{12})"
    r"-(?P<flavour>[a-z0-9]+)-(?P<release>[a-z0-9]+)$"
)
# "15.20-1.pgdg120+1", "17.6-0+deb13u1", "19~beta3-1.pgdg130+1" -> upstream part first.
_DEB_UPSTREAM = re.compile(r"^(?:\d+:)?(?P<major>\d+)(?P<rest>\.\d+|~(?:alpha|beta|rc)\d+)")


@dataclass(frozen=True)
class TagSet:
    """The tags one build gets: exactly one immutable tag and the rolling tags it moves."""

    immutable: str
    rolling: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (self.immutable, *self.rolling)


@dataclass(frozen=True)
class OperandTag:
    """An immutable operand tag, parsed back into its parts (for catalogs and reports)."""

    version: str  # "15.20" or "19beta3"
    major: int
    stamp: str  # YYYYMMDDhhmm
    flavour: str
    release: str


def stamp(when: datetime) -> str:
    """`YYYYMMDDhhmm` in UTC; a naive datetime is taken to be UTC already."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y%m%d%H%M")


def _check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise InputError(f"{tag!r} is not a valid image tag")
    return tag


def _check_word(what: str, value: str) -> str:
    if not _WORD.match(value):
        raise InputError(f"{what} {value!r} must be lower-case letters and digits")
    return value


def operand_version(version: str) -> str:
    """Normalise an operand version for tags: `15.20` stays, `19~beta3` becomes `19beta3`."""
    normalised = version.replace("~", "")
    if not _OPERAND_VERSION.match(normalised):
        raise InputError(f"operand version {version!r} is not MAJOR.MINOR or MAJOR~betaN")
    return normalised


def version_from_package(package_version: str) -> str:
    """The tag version of a PostgreSQL Debian package version (`15.20-1.pgdg120+1` -> `15.20`)."""
    m = _DEB_UPSTREAM.match(package_version)
    if not m:
        raise InputError(
            f"cannot read a PostgreSQL version from package version {package_version!r}"
        )
    return operand_version(m.group("major") + m.group("rest"))


def operand_tags(version: str, flavour: str, release: str, when: datetime) -> TagSet:
    """Tags for one operand build, e.g. 15.20 minimal bookworm at 2026-11-27 12:00 UTC."""
    v = operand_version(version)
    major = re.split(r"[.a-z]", v, maxsplit=1)[0]
    suffix = f"{_check_word('flavour', flavour)}-{_check_word('release', release)}"
    return TagSet(
        immutable=_check_tag(f"{v}-{stamp(when)}-{suffix}"),
        rolling=(_check_tag(f"{v}-{suffix}"), _check_tag(f"{major}-{suffix}")),
    )


def operator_tags(version: str, when: datetime) -> TagSet:
    """Tags for one operator build: immutable `X.Y.Z-YYYYMMDDhhmm`, rolling `X.Y.Z`."""
    v = version.removeprefix("v")
    if not _OPERATOR_VERSION.match(v):
        raise InputError(f"operator version {version!r} is not X.Y.Z")
    return TagSet(immutable=_check_tag(f"{v}-{stamp(when)}"), rolling=(_check_tag(v),))


def parse_operand_tag(tag: str) -> OperandTag | None:
    """The parts of an immutable operand tag, or None for any other tag (rolling, signature)."""
    m = _OPERAND_TAG.match(tag)
    if not m:
        return None
    return OperandTag(
        version=m.group("version"),
        major=int(m.group("major")),
        stamp=m.group("stamp"),
        flavour=m.group("flavour"),
        release=m.group("release"),
    )


def is_immutable(tag: str) -> bool:
    """True for tags that carry a build stamp (operand or operator), which never move."""
    if parse_operand_tag(tag) is not None:
        return True
    head, _, last = tag.rpartition("-")
    return bool(head) and bool(_STAMP.match(last)) and bool(_OPERATOR_VERSION.match(head))


def tags_for(target: Target, packages: Iterable[InstalledPackage], when: datetime) -> TagSet:
    """The tags of a built plan target: operands read MAJOR.MINOR off their server package."""
    if target.kind is Kind.OPERATOR:
        return operator_tags(target.version, when)
    if target.kind is not Kind.OPERAND or target.major is None:
        raise InputError(f"{target.name}: only operands and the operator get release tags")
    server = f"postgresql-{target.major}"
    version = next((p.version for p in packages if p.name == server), "")
    if not version:
        raise InputError(f"{target.name}: package {server} not installed; cannot tag the image")
    return operand_tags(version_from_package(version), target.flavour or "", target.release, when)
