"""Which scanners and which vulnerability data a verdict rests on, and how old the data is.

A "no vulnerabilities" from a scanner is worth exactly as much as the data it compared
against: a DB built from nothing, a week old, or without the image's OS proves nothing.
So every report names each scanner and its version, the vulnerability DB's source, when it
was built and last known current, and what it holds per platform, and the gate refuses
the vulnerability controls when the DB is too old or holds nothing for the image's OS.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

DEFAULT_MAX_DB_AGE = dt.timedelta(hours=36)


class VulnDbSource:
    """Where a vulnerability DB comes from (the `--vuln-db` choices besides `auto`)."""

    PUBLIC = "public"  # Trivy's public DB, fetched from its default registry
    MIRROR = "mirror"  # an OCI copy of it in the user's own registry
    DEBIAN_ARCHIVE = "debian-archive"  # Drydock's feed from Debian's signed archive

    ALL = (PUBLIC, MIRROR, DEBIAN_ARCHIVE)


@dataclass(frozen=True)
class ToolInfo:
    name: str  # "trivy"
    version: str  # "0.74.0"


@dataclass(frozen=True)
class OsFacts:
    """What a scanner saw of an image's operating system and package database."""

    family: str  # "debian"; "" = no OS detected
    version: str  # "12.15"
    packages: int  # OS packages read from the package database (0 = none seen)
    eosl: bool = False  # the scanner says the OS release is past its end of support

    @property
    def platform(self) -> str:
        """The DB platform this OS's advisories live under: "debian 12"."""
        if not self.family:
            return ""
        return f"{self.family} {self.version.split('.', 1)[0]}"

    def describe(self) -> str:
        if not self.family:
            return "no OS detected"
        return f"{self.family} {self.version} ({self.packages} packages)"


@dataclass(frozen=True)
class VulnDbInfo:
    """The vulnerability DB a run scanned with."""

    source: str  # VulnDbSource value
    reference: str  # OCI reference, or the archive suites it was derived from
    built_at: dt.datetime | None  # when the DB was built (its metadata)
    current_at: dt.datetime | None  # newest moment its data is known to match upstream
    advisories: int  # advisories for the platforms listed
    platforms: tuple[tuple[str, int], ...] = ()  # ("debian 12", 239)
    detail: tuple[str, ...] = field(default=())  # e.g. each suite and its Release date

    def age(self, now: dt.datetime) -> dt.timedelta | None:
        return now - self.current_at if self.current_at is not None else None

    def holds(self, platform: str) -> int:
        return dict(self.platforms).get(platform, 0)


@dataclass(frozen=True)
class ScanProvenance:
    """Scanners, their versions and the DB of one scan run, and when it ran."""

    generated_at: dt.datetime
    scanners: tuple[ToolInfo, ...] = ()
    vuln_db: VulnDbInfo | None = None
    max_db_age: dt.timedelta = DEFAULT_MAX_DB_AGE

    def db_age(self) -> dt.timedelta | None:
        return self.vuln_db.age(self.generated_at) if self.vuln_db is not None else None


def hours(delta: dt.timedelta | None) -> str:
    """'5.2 h' for reports; 'unknown' when there is no age."""
    return "unknown" if delta is None else f"{delta.total_seconds() / 3600:.1f} h"
