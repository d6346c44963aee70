"""Parse the Debian archive's control-file formats: Release, Sources and Packages (pure).

These are the signed facts the feed is derived from: a suite's Release (the content of
its InRelease once the signature checked out) names every index file with its size and
SHA-256; the Sources and Packages indices name every source and binary package with its
version, pool directory and file hashes. Everything here takes text and returns frozen
data, so the parsing is unit-tested without a mirror; `pipeline.archive.client` does the
fetching and the signature check.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.errors import ArchiveError

_FIELD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*):(.*)$")


def stanzas(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """deb822 paragraphs as {Field: value}; continuation lines joined with newlines.

    Field names keep their case (deb822 names are case-insensitive, but the archive
    writes them one way); a paragraph ends at a blank line.
    """
    current: dict[str, str] = {}
    last = ""
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            if current:
                yield current
            current, last = {}, ""
            continue
        if line[0] in " \t":
            if last:
                current[last] += "\n" + line.strip()
            continue
        match = _FIELD.match(line)
        if match:
            last = match.group(1)
            current[last] = match.group(2).strip()
    if current:
        yield current


def parse_date(text: str, field: str = "Date") -> dt.datetime:
    """An RFC 2822 date of a Release file ('Mon, 30 Nov 2026 00:22:33 UTC'), in UTC."""
    try:
        when = email.utils.parsedate_to_datetime(text.replace("UTC", "+0000"))
    except (TypeError, ValueError) as err:
        raise ArchiveError(f"Release {field}: not a date: {text!r}") from err
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


@dataclass(frozen=True)
class IndexFile:
    """One file a Release names: path relative to dists/<suite>/, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Release:
    """The signed description of one suite (the content of its InRelease)."""

    suite: str  # "oldstable-security"
    codename: str  # "bookworm-security"
    version: str  # "12" or "12.15"
    date: dt.datetime
    valid_until: dt.datetime | None
    by_hash: bool  # Acquire-By-Hash: files can be fetched under by-hash/SHA256/<sum>
    files: tuple[IndexFile, ...]

    @property
    def release(self) -> str:
        """The release codename without the suite part: "bookworm"."""
        return self.codename.split("-", 1)[0].split("/", 1)[0]

    @property
    def major(self) -> str:
        """Debian's major version: "12" (from "12" or "12.15")."""
        return self.version.split(".", 1)[0]

    def file(self, path: str) -> IndexFile:
        for f in self.files:
            if f.path == path:
                return f
        raise ArchiveError(f"{self.codename}: its Release names no file {path}")

    def has(self, path: str) -> bool:
        return any(f.path == path for f in self.files)


def parse_release(text: str, source: str = "Release") -> Release:
    """Release text (a verified InRelease's content) -> Release; ArchiveError if unusable."""
    found = next(stanzas(text.splitlines()), None)
    if not found:
        raise ArchiveError(f"{source}: empty Release")
    missing = [f for f in ("Codename", "Date", "SHA256") if f not in found]
    if missing:
        raise ArchiveError(f"{source}: Release lacks {', '.join(missing)}")
    files = []
    for line in found["SHA256"].splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        digest, size, path = parts
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not size.isdigit():
            raise ArchiveError(f"{source}: bad SHA256 line {line!r}")
        files.append(IndexFile(path, int(size), digest))
    if not files:
        raise ArchiveError(f"{source}: Release lists no files")
    valid = found.get("Valid-Until")
    return Release(
        suite=found.get("Suite", ""),
        codename=found["Codename"],
        version=found.get("Version", ""),
        date=parse_date(found["Date"], f"{source} Date"),
        valid_until=parse_date(valid, f"{source} Valid-Until") if valid else None,
        by_hash=found.get("Acquire-By-Hash", "").lower() == "yes",
        files=tuple(files),
    )


@dataclass(frozen=True)
class SourceEntry:
    """One source package version of a Sources index."""

    package: str
    version: str
    directory: str  # pool directory, relative to the archive root
    binaries: tuple[str, ...]


def parse_sources(lines: Iterable[str]) -> tuple[SourceEntry, ...]:
    """A Sources index -> its entries (several versions of a package may appear)."""
    entries = []
    for s in stanzas(lines):
        if "Package" not in s or "Version" not in s:
            continue
        binaries = tuple(b.strip() for b in s.get("Binary", "").replace("\n", " ").split(","))
        entries.append(
            SourceEntry(
                s["Package"], s["Version"], s.get("Directory", ""), tuple(b for b in binaries if b)
            )
        )
    return tuple(entries)


@dataclass(frozen=True)
class BinaryEntry:
    """One binary package of a Packages index, with the source it was built from."""

    package: str
    version: str
    source: str
    source_version: str
    filename: str  # pool path, relative to the archive root
    size: int
    sha256: str


_SOURCE_FIELD = re.compile(r"^(\S+)(?:\s+\(([^)]+)\))?$")


def parse_packages(lines: Iterable[str]) -> tuple[BinaryEntry, ...]:
    """A Packages index -> its entries; `Source: name (version)` resolved per dpkg."""
    entries = []
    for s in stanzas(lines):
        if not {"Package", "Version", "Filename", "SHA256"} <= s.keys():
            continue
        source, source_version = s["Package"], s["Version"]
        match = _SOURCE_FIELD.match(s.get("Source", ""))
        if match:
            source = match.group(1)
            source_version = match.group(2) or s["Version"]
        entries.append(
            BinaryEntry(
                package=s["Package"],
                version=s["Version"],
                source=source,
                source_version=source_version,
                filename=s["Filename"],
                size=int(s.get("Size", "0") or 0),
                sha256=s["SHA256"],
            )
        )
    return tuple(entries)


def source_versions(lines: Iterable[str]) -> dict[str, list[str]]:
    """Package -> versions from a Sources index, reading only those two fields.

    The main suite's index is large (tens of MB uncompressed) and only its versions are
    needed (the point release each security upload is compared with), so this skips the
    full paragraph parse.
    """
    versions: dict[str, list[str]] = {}
    package = ""
    for line in lines:
        if line.startswith("Package: "):
            package = line[9:].strip()
        elif line.startswith("Version: ") and package:
            versions.setdefault(package, []).append(line[9:].strip())
        elif not line.strip():
            package = ""
    return versions


def installed_sources(status: str) -> frozenset[str]:
    """The source packages of everything installed, from /var/lib/dpkg/status text."""
    found = set()
    for s in stanzas(status.splitlines()):
        state = s.get("Status", "").split()
        if "Package" not in s or not state or state[-1] in {"not-installed", "config-files"}:
            continue
        match = _SOURCE_FIELD.match(s.get("Source", ""))
        found.add(match.group(1) if match else s["Package"])
    return frozenset(found)


def os_release_codename(text: str) -> str:
    """VERSION_CODENAME from an os-release file ("bookworm"; "" when absent)."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME":
            return value.strip().strip("\"'")
    return ""
