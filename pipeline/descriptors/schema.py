"""The shape of an image descriptor, validated with pydantic (unknown keys are errors).

Three kinds of descriptor live in images/: `base` (the Debian base images Drydock builds
from Debian packages), `operand` (PostgreSQL: majors x releases x flavours) and
`operator` (the included operator, a Python app from this repository).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.models.excludes import DPKG_EXCLUDES

RELEASES = ("bullseye", "bookworm", "trixie")
# Debian's own PostgreSQL: one major per release (all reachable from a plain Debian mirror).
DEBIAN_MAJORS = {"bullseye": 13, "bookworm": 15, "trixie": 17}
# PGDG (apt.postgresql.org) ships every supported major on every release.
PGDG_MAJORS = frozenset(range(13, 19))

Release = Literal["bullseye", "bookworm", "trixie"]
NAME_RE = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"
DIGEST_REF_RE = re.compile(r"^[a-z0-9.:/_-]+(:[\w.-]+)?@sha256:[0-9a-f]{64}$")
# A Debian package name (policy 5.6.7), optionally with the `{major}` placeholder.
PackageName = Annotated[str, Field(pattern=r"^([a-z0-9]|\{major\})([a-z0-9+.-]|\{major\})+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class User(Strict):
    uid: Annotated[int, Field(ge=1, le=2**31 - 1)]
    gid: Annotated[int, Field(ge=1, le=2**31 - 1)]
    name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]*$")]


class BaseRef(Strict):
    """Either a base Drydock builds (`release`) or a registry image pinned by digest."""

    release: Release | None = None
    image: str | None = None

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        if value is not None and not DIGEST_REF_RE.match(value):
            raise ValueError("a registry base must be pinned by digest (name@sha256:<64 hex>)")
        return value


class BaseDescriptor(Strict):
    kind: Literal["base"]
    repository: Annotated[str, Field(pattern=r"^[a-z0-9/_-]+$")] = "drydock/debian"
    releases: Annotated[list[Release], Field(min_length=1)]
    max_age_hours: Annotated[float, Field(gt=0)] = 168.0
    mirror: str = ""  # "" = the Debian mirror the host's apt sources name
    security_mirror: str = ""
    # Release -> the day its security support (LTS included) ends; past it the release is
    # retired: nothing is built on it, `drydock plan` lists it with the date.
    end_of_life: dict[Release, dt.date] = {}


class Flavour(Strict):
    description: str
    packages: Annotated[list[PackageName], Field(min_length=1)]
    # Another flavour of the same major and release this one is built FROM (its packages
    # are installed once, in that image); None: built on the Debian base.
    base: Annotated[str, Field(pattern=NAME_RE)] | None = None
    # dpkg path-exclude groups (pipeline.models.excludes) this flavour's installs leave
    # out; a flavour built on another keeps that one's exclusions too.
    exclude: list[str] = []

    @field_validator("exclude")
    @classmethod
    def _known_groups(cls, value: list[str]) -> list[str]:
        unknown = [g for g in value if g not in DPKG_EXCLUDES]
        if unknown:
            raise ValueError(
                f"unknown exclude group(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(DPKG_EXCLUDES))})"
            )
        if len(set(value)) != len(value):
            raise ValueError("an exclude group is listed twice")
        return value


class PgdgSource(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    keyring: Annotated[str, Field(min_length=1)]  # path relative to the descriptor


class Major(Strict):
    major: Annotated[int, Field(ge=10)]
    source: Literal["debian", "pgdg"]
    releases: list[Release] | None = None  # default: the release(s) the source ships it on
    flavours: list[str] | None = None  # default: every flavour


class OperandDescriptor(Strict):
    kind: Literal["operand"]
    name: Annotated[str, Field(pattern=NAME_RE)]
    repository: Annotated[str, Field(pattern=r"^[a-z0-9/_-]+$")]
    template: str
    user: User
    flavours: Annotated[dict[str, Flavour], Field(min_length=1)]
    majors: Annotated[list[Major], Field(min_length=1)]
    pgdg: PgdgSource | None = None
    base: BaseRef | None = None
    # Major -> the day the PostgreSQL project stops supporting it; past it the major is
    # retired (not built) and fails DISA 2.15 in any image that still holds it.
    end_of_life: dict[int, dt.date] = {}


class App(Strict):
    path: str  # folder in this repository, relative to the repository root
    module: str  # python module kopf runs


class OperatorDescriptor(Strict):
    kind: Literal["operator"]
    name: Annotated[str, Field(pattern=NAME_RE)]
    repository: Annotated[str, Field(pattern=r"^[a-z0-9/_-]+$")]
    template: str
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")]
    release: Release
    user: User
    app: App
    packages: list[PackageName] = []
    base: BaseRef | None = None


Descriptor = Annotated[
    BaseDescriptor | OperandDescriptor | OperatorDescriptor, Field(discriminator="kind")
]
